from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from audit.admin import AuditedAdmin
from desk import rules
from desk.forms import SlaPolicyForm
from desk.models import ConversationSla, CsatResponse, Rule, SlaPolicy, TeamSettings


@admin.register(TeamSettings)
class TeamSettingsAdmin(AuditedAdmin, admin.ModelAdmin[TeamSettings]):
    """Staff switch a team's collision rules (only the assignee replies) and its satisfaction
    survey (on, not after the bot alone, the question) here."""

    list_display = ["team", "only_assignee_replies", "csat_enabled", "csat_skip_bot_only"]
    list_filter = ["only_assignee_replies", "csat_enabled"]


@admin.register(CsatResponse)
class CsatResponseAdmin(admin.ModelAdmin[CsatResponse]):
    """The surveys asked and their answers, to read: customers write them, nobody edits them."""

    list_display = ["conversation", "team", "channel", "operator", "score", "asked_at", "answered_at"]
    list_filter = ["score", "team"]
    list_select_related = ["conversation", "team", "channel", "operator"]
    ordering = ["-asked_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: CsatResponse | None = None) -> bool:
        return False


class RuleAdminForm(forms.ModelForm[Rule]):
    """The same checks as the staff page: known conditions and steps, a readable error."""

    class Meta:
        model = Rule
        fields = ["name", "team", "when", "no_reply_minutes", "conditions", "actions", "position", "enabled"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        team = data.get("team")
        try:
            data["conditions"] = rules.clean_conditions(data.get("conditions") or {})
            data["actions"] = rules.clean_actions(data.get("actions") or [], team_id=getattr(team, "pk", None))
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None
        if data.get("when") == Rule.When.NO_REPLY and not data.get("no_reply_minutes"):
            raise forms.ValidationError(_("Say after how many minutes without a reply."))
        return data


@admin.register(Rule)
class RuleAdmin(AuditedAdmin, admin.ModelAdmin[Rule]):
    """Staff may also edit rules here; the staff page (/desk/rules/) checks the steps and shows a dry run."""

    list_display = ["name", "team", "when", "position", "enabled"]
    list_filter = ["when", "enabled", "team"]
    list_editable = ["position", "enabled"]
    ordering = ["position", "pk"]
    form = RuleAdminForm


@admin.register(SlaPolicy)
class SlaPolicyAdmin(AuditedAdmin, admin.ModelAdmin[SlaPolicy]):
    """The same form and checks as the staff page (/desk/sla/): at least one target, sane minutes."""

    list_display = list(SlaPolicy.EDITABLE)
    list_filter = ["team", "enabled", "business_hours"]
    ordering = ["team", "position", "pk"]
    form = SlaPolicyForm


@admin.register(ConversationSla)
class ConversationSlaAdmin(admin.ModelAdmin[ConversationSla]):
    """The clocks, to read: only desk.services writes them."""

    list_display = ["conversation", "policy", "running", "next_due", "breaches"]
    list_filter = ["running", "policy"]
    raw_id_fields = ["conversation"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
