"""The audit log in Django's admin (read-only), and the mixin that records what admins change there."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group
from django.db.models import Model
from django.http import HttpRequest

from audit.models import Entry
from audit.services import record


def _changes(message: Any) -> dict[str, list[str]]:
    """Field names and secret keys from a Django admin change message (a list of dicts)."""
    fields: list[str] = []
    secrets: list[str] = []
    for part in message if isinstance(message, list) else []:
        for verb, change in part.items() if isinstance(part, dict) else []:
            if not isinstance(change, dict):
                continue
            if "secrets" in change:
                secrets += [str(key) for key in change["secrets"]]
            elif "name" in change:  # a row of an inline: "example question added"
                fields.append(f"{change['name']} {verb}")
            else:
                fields += [str(name) for name in change.get("fields", [])]
    details: dict[str, list[str]] = {}
    if fields:
        details["fields"] = fields
    if secrets:
        details["secret_keys"] = secrets
    return details


class AuditedAdmin(admin.ModelAdmin[Any]):
    """Mix into a ModelAdmin: every addition, change and deletion made there is recorded.

    The admin's own change message says which fields changed (names only); a secret key's change is
    told by ``{"changed": {"fields": [...], "secrets": [keys]}}`` in it (see inbox.admin.ChannelAdmin).
    """

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        record(action=Entry.Action.CREATED, request=request, target=obj, details=_changes(message))
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        record(action=Entry.Action.CHANGED, request=request, target=obj, details=_changes(message))
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            record(action=Entry.Action.DELETED, request=request, target=obj)
        return super().log_deletions(request, queryset)


# Roles (Django's groups of permissions) are changed here too.
admin.site.unregister(Group)


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    pass


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin[Entry]):
    """Read-only for everyone, superusers included: entries are written by audit.services only."""

    list_display = ["at", "actor", "action", "target_type", "target", "address"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor", "target", "target_id"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in Entry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Entry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Entry | None = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}
