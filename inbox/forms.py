"""Forms of the operator UI. Each validates one action's input; the view then calls one service."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.db import MAX_ID
from customers.crm import clean_value
from customers.models import AttributeDefinition, Customer, Identity
from customers.services import InvalidAddress, normalise_address
from inbox import extensions
from inbox.models import Channel, Conversation, Operator, SavedReply, Team
from inbox.selectors import search
from inbox.selectors.conversations import TABS
from inbox.selectors.cursors import InvalidCursor, decode_cursor
from inbox.services.replies import manageable_teams


class InboxFilterForm(forms.Form):
    """The inbox list's query string: tab, filters and the keyset cursor."""

    tab = forms.ChoiceField(
        label=_("View"),
        choices=[("mine", _("Mine")), ("unassigned", _("Unassigned")), ("bot", _("Bot")), ("all", _("All"))],
        required=False,
    )
    # Ids beyond any id column are refused here with the others (a 400), never sent to the database.
    team = forms.IntegerField(
        label=_("Team"),
        required=False,
        min_value=1,
        max_value=MAX_ID,
        error_messages={
            "invalid": _("No such team."),
            "min_value": _("No such team."),
            "max_value": _("No such team."),
        },
    )
    channel = forms.IntegerField(
        label=_("Channel"),
        required=False,
        min_value=1,
        max_value=MAX_ID,
        error_messages={
            "invalid": _("No such channel."),
            "min_value": _("No such channel."),
            "max_value": _("No such channel."),
        },
    )
    status = forms.ChoiceField(
        label=_("Status"), choices=[("", _("Any status")), *Conversation.Status.choices], required=False
    )
    # One customer attribute equals a value (``?attr=plan&value=pro``); typed by its definition.
    attr = forms.CharField(label=_("Attribute"), required=False, max_length=100)
    value = forms.CharField(label=_("equals"), required=False, max_length=1000)
    cursor = forms.CharField(required=False, max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Filters of the apps above the core (labels...): inbox.extensions.
        for param, list_filter in extensions.LIST_FILTERS.items():
            self.fields[param] = list_filter.field()
        if extensions.LIST_ORDERS:
            self.fields["sort"] = forms.ChoiceField(
                label=_("Order"),
                required=False,
                choices=[("", _("Newest first"))]
                + [(key, order.label) for key, order in extensions.LIST_ORDERS.items()],
            )

    def clean_tab(self) -> str:
        return self.cleaned_data.get("tab") or "all"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        key, value = (data.get("attr") or "").strip(), data.get("value") or ""
        data["attribute"] = None
        if key:
            definition = AttributeDefinition.objects.filter(key=key).first()
            try:
                typed = clean_value(definition, value) if definition else value.strip()
            except ValidationError as exc:
                self.add_error("value", exc.messages)
                return data
            data["attribute"] = (key, typed)
        return data

    def query(self) -> dict[str, Any]:
        data = self.cleaned_data
        assert data["tab"] in TABS  # noqa: S101 - guaranteed by the choices
        return {
            "tab": data["tab"],
            "team_id": data.get("team"),
            "channel_id": data.get("channel"),
            "status": data.get("status") or None,
            "attribute": data.get("attribute"),
            "order": data.get("sort") or None,
            "extra": {param: data[param] for param in extensions.LIST_FILTERS if data.get(param) not in (None, "")},
        }


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Any number of uploaded files (a list, possibly empty)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> Any:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


MAX_REPLY_FILES = 10


class ReplyForm(forms.Form):
    """A reply to the customer (text, files or both), or a private note when ``mode`` is ``note``."""

    text = forms.CharField(
        label=_("Message"), widget=forms.Textarea(attrs={"rows": 3}), max_length=10_000, required=False
    )
    mode = forms.ChoiceField(choices=[("reply", _("Reply")), ("note", _("Private note"))], initial="reply")
    channel = forms.ModelChoiceField(label=_("Send on"), queryset=Channel.objects.none(), required=False)
    attachments = MultipleFileField(label=_("Attach files"), required=False)
    # A customer's message this reply answers ("Reply to this"); quoted where the channel can.
    reply_to = forms.IntegerField(required=False, min_value=1)
    # Collision control: when the operator's thread was opened (or last sent from), and whether they
    # confirmed sending although someone else replied since (inbox.views.conversations.send).
    opened_at = forms.DateTimeField(required=False)
    confirm = forms.BooleanField(required=False)
    # Send later: the reply waits as "scheduled" until then (the operator's time zone).
    send_at = forms.DateTimeField(
        label=_("Send at"),
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("send_at") and data.get("mode") == "note":
            raise forms.ValidationError(_("Only replies can be sent later; a private note is added at once."))
        files = data.get("attachments") or []
        if not (data.get("text") or "").strip() and not files:
            raise forms.ValidationError(_("Write a message or attach a file."))
        if files and data.get("mode") == "note":
            raise forms.ValidationError(_("Private notes cannot carry files; send them as a reply."))
        if len(files) > MAX_REPLY_FILES:
            raise forms.ValidationError(_("Attach at most %(n)s files.") % {"n": MAX_REPLY_FILES})
        limit = settings.PARLEY_MAX_ATTACHMENT_BYTES
        for upload in files:
            if upload.size > limit:
                raise forms.ValidationError(
                    _("%(name)s is larger than %(size)s.") % {"name": upload.name, "size": filesizeformat(limit)}
                )
        return data

    def __init__(self, *args: Any, channels: list[Channel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["channel"]
        assert isinstance(field, forms.ModelChoiceField)  # noqa: S101
        field.queryset = Channel.objects.filter(pk__in=[c.pk for c in channels])


class ScheduledEditForm(forms.Form):
    """A scheduled reply's new text and time."""

    text = forms.CharField(label=_("Message"), max_length=10_000, required=False)
    send_at = forms.DateTimeField(label=_("Send at"), input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"])


class TemplateForm(forms.Form):
    """An approved template to send on a channel; its variables come as ``tpl-<template>-<variable>``."""

    channel = forms.ModelChoiceField(label=_("Send on"), queryset=Channel.objects.none())
    template = forms.CharField(label=_("Template"), max_length=64)

    def __init__(self, *args: Any, channels: list[Channel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["channel"]
        assert isinstance(field, forms.ModelChoiceField)  # noqa: S101
        field.queryset = Channel.objects.filter(pk__in=[c.pk for c in channels])

    @staticmethod
    def field_name(template: str, variable: str) -> str:
        return f"tpl-{template}-{variable}"

    def variables(self) -> dict[str, str]:
        prefix = self.field_name(self.cleaned_data["template"], "")
        return {key[len(prefix) :]: str(value)[:2000] for key, value in self.data.items() if key.startswith(prefix)}


class AssignForm(forms.Form):
    """Assign to an operator of the conversation's team (``me`` is resolved by the view)."""

    operator = forms.ModelChoiceField(label=_("Assign to"), queryset=Operator.objects.none())

    def __init__(self, *args: Any, conversation: Conversation, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["operator"]
        assert isinstance(field, forms.ModelChoiceField)  # noqa: S101
        field.queryset = teammates(conversation)


def teammates(conversation: Conversation) -> Any:
    """Operators who may take the conversation: its team's members, and staff."""
    members = Q(is_staff=True)
    if conversation.team_id:
        members |= Q(teams=conversation.team_id)
    return Operator.objects.filter(members, is_active=True).distinct().order_by("display_name", "username")


SNOOZE_PRESETS: dict[str, Any] = {
    "1h": (_("1 hour"), lambda now: now + timedelta(hours=1)),
    "4h": (_("4 hours"), lambda now: now + timedelta(hours=4)),
    "tomorrow": (
        _("Tomorrow morning"),
        lambda now: (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0),
    ),
    "week": (
        _("Next week"),
        lambda now: (now + timedelta(days=7 - now.weekday())).replace(hour=9, minute=0, second=0, microsecond=0),
    ),
}


class SnoozeForm(forms.Form):
    """Snooze until a preset moment or an exact date and time (in the operator's time zone)."""

    preset = forms.ChoiceField(
        label=_("Snooze"),
        choices=[("", _("Pick a time…"))] + [(key, label) for key, (label, _at) in SNOOZE_PRESETS.items()],
        required=False,
    )
    until = forms.DateTimeField(
        label=_("Until"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        preset = data.get("preset")
        if preset:
            data["until"] = SNOOZE_PRESETS[preset][1](timezone.localtime())
        until: datetime | None = data.get("until")
        if until is None:
            raise forms.ValidationError(_("Choose when the conversation should come back."))
        if until <= timezone.now():
            raise forms.ValidationError(_("Snooze until a time in the future."))
        return data


class PriorityForm(forms.Form):
    priority = forms.TypedChoiceField(label=_("Priority"), choices=Conversation.Priority.choices, coerce=int)


class ResendForm(forms.Form):
    channel = forms.ModelChoiceField(label=_("Resend on"), queryset=Channel.objects.none())

    def __init__(self, *args: Any, channels: list[Channel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["channel"]
        assert isinstance(field, forms.ModelChoiceField)  # noqa: S101
        field.queryset = Channel.objects.filter(pk__in=[c.pk for c in channels])


class MessageSearchForm(forms.Form):
    """The Search page's query string: the query and the cursor of an older page."""

    q = forms.CharField(label=_("Search messages"), required=False, strip=True)
    before = forms.CharField(required=False, max_length=40)

    def clean_q(self) -> str:
        query: str = self.cleaned_data["q"]
        if query:
            try:
                search.parse_query(query)
            except search.InvalidQuery as exc:
                raise forms.ValidationError(str(exc), code="invalid") from None
        return query

    def clean_before(self) -> str:
        before: str = self.cleaned_data["before"]
        if before:
            try:
                decode_cursor(before)
            except InvalidCursor:
                raise forms.ValidationError(
                    _("That link to older results is broken. Search again."), code="invalid"
                ) from None
        return before


class SavedReplySearchForm(forms.Form):
    q = forms.CharField(label=_("Search saved replies"), max_length=100, required=False)


class SavedReplyForm(forms.Form):
    """A saved reply's title, text and team, for an operator: the team is one they manage.

    Staff may leave the team empty (everyone's saved reply); operators must pick one of their teams.
    Uniqueness of the title is checked by the service, which knows the other saved replies.
    """

    title = forms.CharField(
        label=_("Title"),
        max_length=SavedReply._meta.get_field("title").max_length,
        error_messages={"required": _("Give the saved reply a title.")},
    )
    text = forms.CharField(
        label=_("Text"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 8, "dir": "auto"}),
        error_messages={"required": _("Write the text of the saved reply.")},
    )
    team = forms.ModelChoiceField(
        label=_("Team"),
        queryset=Team.objects.none(),
        required=False,
        error_messages={"invalid_choice": _("Choose one of your teams.")},
    )

    def __init__(self, *args: Any, operator: Operator, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["team"]
        assert isinstance(field, forms.ModelChoiceField)  # noqa: S101
        field.queryset = manageable_teams(operator)
        if operator.is_staff:
            field.empty_label = _("Every team")
        else:
            field.required = True
            field.empty_label = None
            field.error_messages["required"] = _("Choose one of your teams.")


# -- customers ---------------------------------------------------------------------------------

LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_LABELS = 20
MAX_ATTRIBUTES = 50


class CustomerSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label=_("Search"))
    after = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)


def _attribute_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


ATTRIBUTE_PREFIX = "attribute_"


def attribute_field(definition: AttributeDefinition) -> forms.Field:
    """The form field of one typed attribute; its value is checked by ``customers.crm.clean_value``."""
    label = definition.label
    if definition.type == AttributeDefinition.Type.CHOICE:
        return forms.ChoiceField(
            label=label, required=False, choices=[("", "—"), *((c, c) for c in definition.choices)]
        )
    widgets: dict[str, forms.Widget] = {
        AttributeDefinition.Type.DATE: forms.DateInput(attrs={"type": "date"}),
        AttributeDefinition.Type.NUMBER: forms.TextInput(attrs={"inputmode": "decimal"}),
        AttributeDefinition.Type.LINK: forms.URLInput(),
    }
    return forms.CharField(label=label, required=False, max_length=1000, widget=widgets.get(definition.type))


class CustomerForm(forms.Form):
    """The editable part of a profile: the CRM's external id, the typed attributes the operator's
    teams see (one field each), and the free-form attributes as ``key: value`` lines."""

    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    external_id = forms.CharField(
        label=_("External id"),
        max_length=255,
        required=False,
        help_text=_("The customer's id in your CRM."),
    )
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

    def __init__(
        self,
        *args: Any,
        customer: Customer,
        definitions: list[AttributeDefinition] | None = None,
        defined_keys: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.customer = customer
        self.definitions = definitions or []
        # Every defined key (any team's): those never show in the free-form lines.
        self.defined_keys = defined_keys if defined_keys is not None else {d.key for d in self.definitions}
        values = customer.attributes or {}
        kwargs.setdefault(
            "initial",
            {
                "name": customer.name,
                "external_id": customer.external_id,
                "language": customer.language,
                "is_vip": customer.is_vip,
                "labels": ", ".join(customer.labels),
                "attributes": "\n".join(
                    f"{key}: {_attribute_text(value)}" for key, value in values.items() if key not in self.defined_keys
                ),
                **{
                    ATTRIBUTE_PREFIX + d.key: _attribute_text(values[d.key])
                    for d in self.definitions
                    if d.key in values
                },
            },
        )
        super().__init__(*args, **kwargs)
        for definition in self.definitions:
            self.fields[ATTRIBUTE_PREFIX + definition.key] = attribute_field(definition)
        # The free-form lines last, after the typed fields.
        self.fields["attributes"] = self.fields.pop("attributes")

    def clean_external_id(self) -> str:
        external_id = str(self.cleaned_data["external_id"]).strip()
        if external_id and Customer.objects.filter(external_id=external_id).exclude(pk=self.customer.pk).exists():
            raise forms.ValidationError(_("Another customer has this external id."))
        return external_id

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

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "attributes" not in data:
            return data
        current = self.customer.attributes or {}
        visible = {d.key for d in self.definitions}
        # Defined attributes of teams the operator is not in stay as they are.
        kept = {k: v for k, v in current.items() if k in self.defined_keys and k not in visible}
        typed: dict[str, Any] = {}
        for definition in self.definitions:
            name = ATTRIBUTE_PREFIX + definition.key
            try:
                value = clean_value(definition, data.get(name))
            except ValidationError as exc:
                self.add_error(name, exc.messages)
                continue
            if value is not None:
                typed[definition.key] = value
        data["attributes"] = {**kept, **data["attributes"], **typed}
        for definition in self.definitions:
            data.pop(ATTRIBUTE_PREFIX + definition.key, None)
        return data

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
            if key in self.defined_keys:
                raise forms.ValidationError(
                    _("Line %(number)d: %(key)s is a custom attribute; use its own field.")
                    % {"number": number, "key": key}
                )
            # A value the operator did not touch keeps its type (numbers, lists from integrations).
            unchanged = key in previous and _attribute_text(previous[key]) == text
            attributes[key] = previous[key] if unchanged else text
        if len(attributes) > MAX_ATTRIBUTES:
            raise forms.ValidationError(_("At most %(count)d attributes.") % {"count": MAX_ATTRIBUTES})
        return attributes


class CustomerNoteForm(forms.Form):
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
