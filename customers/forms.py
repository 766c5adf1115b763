from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from common.db import MAX_ID
from customers.models import Customer, Identity
from customers.services import InvalidAddress, normalise_address

LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_LABELS = 20
MAX_ATTRIBUTES = 50


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label=_("Search"))
    after = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)


def _attribute_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class CustomerForm(forms.Form):
    """The editable part of a profile. Attributes are ``key: value`` lines."""

    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    language = forms.CharField(
        label=_("Language"), max_length=16, required=False, help_text=_("A language code, such as en or pt-BR.")
    )
    is_vip = forms.BooleanField(label=_("VIP"), required=False)
    labels = forms.CharField(label=_("Labels"), required=False, max_length=1000, help_text=_("Separated by commas."))
    attributes = forms.CharField(
        label=_("Attributes"),
        required=False,
        max_length=10000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("One per line: key: value"),
    )

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        self.customer = customer
        kwargs.setdefault(
            "initial",
            {
                "name": customer.name,
                "language": customer.language,
                "is_vip": customer.is_vip,
                "labels": ", ".join(customer.labels),
                "attributes": "\n".join(
                    f"{key}: {_attribute_text(value)}" for key, value in customer.attributes.items()
                ),
            },
        )
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        return str(self.cleaned_data["name"]).strip()

    def clean_language(self) -> str:
        language = str(self.cleaned_data["language"]).strip()
        if language and not LANGUAGE_TAG.match(language):
            raise forms.ValidationError(_("Enter a language code, such as en or pt-BR."))
        return language

    def clean_labels(self) -> list[str]:
        labels: list[str] = []
        for label in str(self.cleaned_data["labels"]).split(","):
            label = " ".join(label.split())
            if len(label) > 50:
                raise forms.ValidationError(_("A label can be at most 50 characters long."))
            if label and label not in labels:
                labels.append(label)
        if len(labels) > MAX_LABELS:
            raise forms.ValidationError(_("At most %(count)d labels.") % {"count": MAX_LABELS})
        return labels

    def clean_attributes(self) -> dict[str, Any]:
        previous = self.customer.attributes
        attributes: dict[str, Any] = {}
        for number, line in enumerate(str(self.cleaned_data["attributes"]).splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, text = line.partition(":")
            key, text = key.strip(), text.strip()
            if not sep or not key:
                raise forms.ValidationError(
                    _("Line %(number)d: write it as key: value.") % {"number": number}, code="format"
                )
            if len(key) > 100:
                raise forms.ValidationError(_("Line %(number)d: the key is too long.") % {"number": number})
            # A value the operator did not touch keeps its type (numbers, lists from integrations).
            unchanged = key in previous and _attribute_text(previous[key]) == text
            attributes[key] = previous[key] if unchanged else text
        if len(attributes) > MAX_ATTRIBUTES:
            raise forms.ValidationError(_("At most %(count)d attributes.") % {"count": MAX_ATTRIBUTES})
        return attributes


class NoteForm(forms.Form):
    text = forms.CharField(label=_("Note"), max_length=5000, widget=forms.Textarea(attrs={"rows": 3}), strip=True)


# Identities an operator can add by hand: the ones a person can tell us over the phone.
LINKABLE_KINDS = [(Identity.Kind.PHONE.value, _("Phone")), (Identity.Kind.EMAIL.value, _("Email"))]


class LinkIdentityForm(forms.Form):
    """An address the operator adds by hand. One owned by another customer is an error, never a move."""

    kind = forms.ChoiceField(label=_("Kind"), choices=LINKABLE_KINDS)
    value = forms.CharField(label=_("Address"), max_length=320)

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        self.customer = customer
        # Set when the address belongs to another customer: the page offers a merge instead.
        self.owner: Customer | None = None
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind, value = cleaned.get("kind"), cleaned.get("value")
        if not kind or not value:
            return cleaned
        try:
            cleaned["value"] = normalise_address(kind, value)
        except InvalidAddress:
            if kind == Identity.Kind.PHONE:
                self.add_error("value", _("This is not a phone number. Include the country code, such as +44."))
            else:
                self.add_error("value", _("This is not an email address."))
            return cleaned
        existing = Identity.objects.filter(kind=kind, value=cleaned["value"]).select_related("customer").first()
        if existing is not None:
            if existing.customer_id == self.customer.pk:
                self.add_error("value", _("This customer already has this address."))
            else:
                self.owner = existing.customer
                self.add_error("value", _("This address belongs to another customer."))
        return cleaned


class MergeForm(forms.Form):
    """Merging needs an explicit confirmation, not just a POST."""

    confirm = forms.BooleanField(
        label=_("I have checked that these are the same person."),
        error_messages={"required": _("Tick the box to confirm the merge.")},
    )
