"""Forms of the manager's tools."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core import validators as django_validators
from django.utils.translation import gettext_lazy as _

from common.db import MAX_ID
from desk.models import Label, Macro, Rule, SlaPolicy
from inbox.models import Channel, Conversation, Operator, SavedReply, Team


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


class RuleForm(forms.Form):
    """A rule as a fixed form: when, the conditions (each optional; every one given must hold)
    and the actions (each optional), which run in the order shown."""

    name = forms.CharField(label=_("Name"), max_length=80)
    team = forms.ModelChoiceField(
        label=_("Team"),
        queryset=Team.objects.all(),
        required=False,
        empty_label=_("Every team"),
        help_text=_("A team's rule looks at that team's conversations only."),
    )
    when = forms.ChoiceField(label=_("When"), choices=Rule.When.choices)
    no_reply_minutes = forms.IntegerField(
        label=_("Minutes without a reply"), min_value=1, max_value=60 * 24 * 30, required=False
    )
    position = forms.IntegerField(label=_("Order"), min_value=0, max_value=100_000, initial=100)
    enabled = forms.BooleanField(label=_("On"), required=False, initial=True)
    # -- if
    channels = forms.ModelMultipleChoiceField(
        label=_("Channel is one of"), queryset=Channel.objects.all(), required=False
    )
    teams = forms.ModelMultipleChoiceField(label=_("Team is one of"), queryset=Team.objects.all(), required=False)
    labels = forms.ModelMultipleChoiceField(
        label=_("Has one of the labels"), queryset=Label.objects.all(), required=False
    )
    priorities = forms.TypedMultipleChoiceField(
        label=_("Priority is one of"), choices=Conversation.Priority.choices, coerce=int, required=False
    )
    text_contains = forms.CharField(
        label=_("The message contains"), max_length=200, required=False, help_text=_("Upper or lower case alike.")
    )
    hours = forms.ChoiceField(
        label=_("Business hours"),
        choices=[("", _("Any time")), ("open", _("The team is open")), ("closed", _("The team is closed"))],
        required=False,
    )
    languages = forms.CharField(
        label=_("Customer's language is one of"),
        max_length=100,
        required=False,
        help_text=_("Codes, separated by commas: ru, uk, fa."),
    )
    # -- then
    assign_team = forms.ModelChoiceField(
        label=_("Move to the team"), queryset=Team.objects.all(), required=False, empty_label=_("Leave it")
    )
    assign = forms.ModelChoiceField(
        label=_("Assign to"),
        queryset=Operator.objects.filter(is_active=True),
        required=False,
        empty_label=_("Leave it"),
    )
    add_labels = forms.ModelMultipleChoiceField(
        label=_("Add labels"), queryset=Label.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    priority = forms.TypedChoiceField(
        label=_("Set the priority"),
        choices=[("", _("Leave it")), *Conversation.Priority.choices],
        coerce=int,
        empty_value=None,
        required=False,
    )
    saved_reply = forms.ModelChoiceField(
        label=_("Reply with a saved reply"),
        queryset=SavedReply.objects.select_related("team"),
        required=False,
        empty_label=_("No reply"),
    )
    note = forms.CharField(label=_("Add a note"), max_length=2000, required=False, widget=forms.Textarea)
    resolve = forms.BooleanField(label=_("Resolve the conversation"), required=False)

    def clean_languages(self) -> list[str]:
        codes = [code.strip().lower() for code in str(self.cleaned_data["languages"]).split(",") if code.strip()]
        if any(not code.replace("-", "").isalpha() or len(code) > 16 for code in codes):
            raise forms.ValidationError(_("Languages are codes such as “ru” or “fa”."))
        return codes

    def conditions(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "channels": [c.pk for c in data["channels"]],
            "teams": [t.pk for t in data["teams"]],
            "labels": [label.pk for label in data["labels"]],
            "priorities": list(data["priorities"]),
            "text_contains": data["text_contains"].strip(),
            "hours": data["hours"],
            "languages": data["languages"],
        }

    def actions(self) -> list[dict[str, Any]]:
        data = self.cleaned_data
        steps: list[dict[str, Any]] = []
        if data["assign_team"] is not None:
            steps.append({"action": "assign_team", "team": data["assign_team"].pk})
        if data["assign"] is not None:
            steps.append({"action": "assign", "operator": data["assign"].pk})
        steps += [{"action": "add_label", "label": label.pk} for label in data["add_labels"]]
        if data["priority"] is not None:
            steps.append({"action": "priority", "priority": data["priority"]})
        if data["saved_reply"] is not None:
            steps.append({"action": "reply", "saved_reply": data["saved_reply"].pk})
        if data["note"].strip():
            steps.append({"action": "note", "text": data["note"].strip()})
        if data["resolve"]:
            steps.append({"action": "resolve"})
        return steps

    def fill(self, rule: Rule) -> Rule:
        data = self.cleaned_data
        rule.name = data["name"].strip()
        rule.team = data["team"]
        rule.when = data["when"]
        rule.no_reply_minutes = data["no_reply_minutes"]
        rule.position = data["position"]
        rule.enabled = data["enabled"]
        rule.conditions = self.conditions()
        rule.actions = self.actions()
        return rule

    @staticmethod
    def initial_for(rule: Rule) -> dict[str, Any]:
        c = rule.conditions
        initial: dict[str, Any] = {
            "name": rule.name,
            "team": rule.team_id,
            "when": rule.when,
            "no_reply_minutes": rule.no_reply_minutes,
            "position": rule.position,
            "enabled": rule.enabled,
            "channels": c.get("channels", []),
            "teams": c.get("teams", []),
            "labels": c.get("labels", []),
            "priorities": c.get("priorities", []),
            "text_contains": c.get("text_contains", ""),
            "hours": c.get("hours", ""),
            "languages": ", ".join(c.get("languages", [])),
            "add_labels": [],
        }
        keys = {"assign_team": "team", "assign": "operator", "priority": "priority", "reply": "saved_reply"}
        for step in rule.actions:
            action = step["action"]
            if action == "add_label":
                initial["add_labels"].append(step["label"])
            elif action in keys:
                initial["saved_reply" if action == "reply" else action] = step[keys[action]]
            elif action == "note":
                initial["note"] = step["text"]
            elif action == "resolve":
                initial["resolve"] = True
        return initial


MAX_TARGET_MINUTES = 366 * 24 * 60  # a year: longer is a typing slip


class SlaPolicyForm(forms.ModelForm[SlaPolicy]):
    """A policy: its team, what narrows it, its targets in minutes (each optional, at least one)."""

    class Meta:
        model = SlaPolicy
        fields = SlaPolicy.EDITABLE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("first_response_minutes", "next_response_minutes", "resolution_minutes"):
            field = self.fields[name]
            assert isinstance(field, forms.IntegerField)  # noqa: S101 - the model's field
            field.min_value, field.max_value = 1, MAX_TARGET_MINUTES
            field.validators += [
                django_validators.MinValueValidator(1),
                django_validators.MaxValueValidator(MAX_TARGET_MINUTES),
            ]
        position = self.fields["position"]
        position.validators.append(django_validators.MaxValueValidator(100_000))

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if not name:
            raise forms.ValidationError(_("Give the policy a name."))
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not any(data.get(f"{t}_minutes") for t in ("first_response", "next_response", "resolution")):
            raise forms.ValidationError(_("Give at least one target."))
        return data
