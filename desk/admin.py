from __future__ import annotations

from django.contrib import admin

from audit.admin import AuditedAdmin
from desk.models import TeamSettings


@admin.register(TeamSettings)
class TeamSettingsAdmin(AuditedAdmin, admin.ModelAdmin[TeamSettings]):
    """Staff switch a team's collision rules here (only the assignee replies)."""

    list_display = ["team", "only_assignee_replies"]
    list_filter = ["only_assignee_replies"]
