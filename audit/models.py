from __future__ import annotations

from typing import Any, NoReturn

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AppendOnly(Exception):
    """Raised by any attempt to change or delete an audit entry through the ORM."""

    def __init__(self) -> None:
        super().__init__("the audit log is append-only: entries are never changed or deleted")


class EntryQuerySet(models.QuerySet["Entry"]):
    # The ORM's bulk paths would bypass Entry.save/delete; they are closed too. (The database
    # refuses UPDATE and, on PostgreSQL, DELETE as well: migration 0002.)
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnly

    def delete(self) -> NoReturn:
        raise AppendOnly

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnly


class Entry(models.Model):
    """One thing that happened, written once by :func:`audit.services.record`, never changed."""

    class Action(models.TextChoices):
        SIGNED_IN = "signed_in", _("Signed in")
        SIGN_IN_FAILED = "sign_in_failed", _("Sign-in failed")
        LOCKED_OUT = "locked_out", _("Locked out")
        SIGNED_OUT = "signed_out", _("Signed out")
        CREATED = "created", _("Created")
        CHANGED = "changed", _("Changed")
        DELETED = "deleted", _("Deleted")
        IMPORTED = "imported", _("Imported")
        MERGED = "merged", _("Merged")
        MERGE_UNDONE = "merge_undone", _("Merge undone")
        EXPORTED = "exported", _("Exported")

    at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    action = models.CharField(_("action"), max_length=32, choices=Action.choices)
    # Who did it: the operator's id and username at the time, kept as values (not a foreign key)
    # so that the entry outlives the operator and stays exactly as written. Empty for the system.
    actor_id = models.BigIntegerField(_("operator id"), null=True, blank=True)
    actor = models.CharField(_("operator"), max_length=150, blank=True)
    address = models.GenericIPAddressField(_("address"), null=True, blank=True)
    # What it was done to: a kind ("channel", "operator", "role", "article", "customer", "report"…),
    # the row's id and how it was called then.
    target_type = models.CharField(_("kind"), max_length=40, blank=True)
    target_id = models.CharField(_("id"), max_length=64, blank=True)
    target = models.CharField(_("object"), max_length=200, blank=True)
    # Which fields or secret keys changed (names, never values), filters of an export, and so on.
    details: models.JSONField[dict[str, Any]] = models.JSONField(_("details"), default=dict, blank=True)

    objects = EntryQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_entry_target"),
            models.Index(fields=["actor", "id"], name="audit_entry_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor or '-'} {self.action} {self.target_type} {self.target}".strip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnly

    @property
    def details_text(self) -> str:
        """The details as a person reads them: ``fields: name, team; secret_keys: auth_token``."""
        parts = []
        for name, value in self.details.items():
            shown = ", ".join(str(item) for item in value) if isinstance(value, list) else str(value)
            parts.append(f"{name}: {shown}")
        return "; ".join(parts)
