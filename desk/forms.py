"""Forms of the manager's tools."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from common.db import MAX_ID
from desk.models import Label, Macro
from inbox.models import Conversation, SavedReply, Team


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


class MacroForm(forms.Form):
    """A macro's steps as a fixed form: each step is optional, and they run in the order shown
    (labels, priority, assignment, reply, resolve), the order a person would do them in."""

    name = forms.CharField(label=_("Name"), max_length=80)
    team = forms.ModelChoiceField(
        label=_("Team"),
        queryset=Team.objects.all(),
        required=False,
        empty_label=_("Every team"),
        help_text=_("A team's macro shows on that team's conversations only."),
    )
    labels = forms.ModelMultipleChoiceField(
        label=_("Add labels"), queryset=Label.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    priority = forms.TypedChoiceField(
        label=_("Set the priority"),
        choices=[("", _("Leave it")), *Conversation.Priority.choices],
        coerce=int,
        empty_value=None,
        required=False,
    )
    assign = forms.ChoiceField(
        label=_("Assign"),
        choices=[("", _("Leave it")), ("me", _("To whoever runs the macro"))],
        required=False,
    )
    saved_reply = forms.ModelChoiceField(
        label=_("Reply with a saved reply"),
        queryset=SavedReply.objects.select_related("team"),
        required=False,
        empty_label=_("No reply"),
    )
    resolve = forms.BooleanField(label=_("Resolve the conversation"), required=False)

    def actions(self) -> list[dict[str, Any]]:
        data = self.cleaned_data
        steps: list[dict[str, Any]] = [{"action": "add_label", "label": label.pk} for label in data["labels"]]
        if data["priority"] is not None:
            steps.append({"action": "priority", "priority": data["priority"]})
        if data["assign"]:
            steps.append({"action": "assign", "operator": data["assign"]})
        if data["saved_reply"] is not None:
            steps.append({"action": "reply", "saved_reply": data["saved_reply"].pk})
        if data["resolve"]:
            steps.append({"action": "resolve"})
        return steps

    @staticmethod
    def initial_for(macro: Macro) -> dict[str, Any]:
        initial: dict[str, Any] = {"name": macro.name, "team": macro.team_id, "labels": [], "resolve": False}
        for step in macro.actions:
            if step["action"] == "add_label":
                initial["labels"].append(step["label"])
            elif step["action"] == "priority":
                initial["priority"] = step["priority"]
            elif step["action"] == "assign":
                initial["assign"] = step["operator"]
            elif step["action"] == "reply":
                initial["saved_reply"] = step["saved_reply"]
            elif step["action"] == "resolve":
                initial["resolve"] = True
        return initial


class PickMacroForm(forms.Form):
    """A macro picked in a thread, by id."""

    macro = forms.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        error_messages={
            "required": _("Pick a macro."),
            "invalid": _("No such macro."),
            "min_value": _("No such macro."),
            "max_value": _("No such macro."),
        },
    )
