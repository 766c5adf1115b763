"""Forms of the manager's tools."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from common.db import MAX_ID
from desk.models import Label


class LabelForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=50)
    colour = forms.ChoiceField(label=_("Colour"), choices=Label.Colour.choices, initial=Label.Colour.BLUE)
    description = forms.CharField(label=_("Description"), max_length=200, required=False)

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if not name:
            raise forms.ValidationError(_("Give the label a name."))
        return name


class PickLabelForm(forms.Form):
    """A label picked in a thread, by id."""

    label = forms.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        error_messages={
            "required": _("Pick a label."),
            "invalid": _("No such label."),
            "min_value": _("No such label."),
            "max_value": _("No such label."),
        },
    )
