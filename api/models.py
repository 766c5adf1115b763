"""API tokens and the responses remembered under an ``Idempotency-Key``.

A token is shown once, when it is made, and only its SHA-256 digest is stored: a copy of the
database gives nobody a working token. The first characters after ``parley_`` are its ``prefix``,
stored as they are, so a request finds its token by an indexed lookup and only then compares
digests (in constant time).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def live(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """One integration's or one operator's key to the API.

    A token acts as ``operator`` with exactly that operator's visibility (their teams'
    conversations; everything for staff). A *team integration* token (``team`` set) acts as an
    account of its own, made for it: a member of that team only, who cannot sign in and is never
    routed conversations (docs/api.md, "Tokens").
    """

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name=_("acts as"),
    )
    team = models.ForeignKey(
        "inbox.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name=_("integration of team"),
        help_text=_("Set for a team integration token; empty for an operator's own token."),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} (parley_{self.prefix}…)"

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None

    @property
    def scope_label(self) -> str:
        if self.team_id is not None:
            return str(_("integration of %(team)s") % {"team": self.team})
        return str(_("operator %(operator)s") % {"operator": self.operator})


class IdempotentRequest(models.Model):
    """The first answer to a write sent with an ``Idempotency-Key``, per token (api/idempotency.py).

    Inserted in the same transaction as the write itself: a second request with the same key waits
    on the unique index until the first commits, then replays its answer; if the first failed, the
    row is gone with it and the retry does the work.
    """

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="idempotent_requests")
    key = models.CharField(max_length=255)
    # What was asked (method, path, body): the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    body: models.JSONField[Any] = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["token", "key"], name="api_idempotency_unique_key")]
        indexes = [models.Index(fields=["created_at"], name="api_idempotency_age")]

    def __str__(self) -> str:
        return f"{self.token_id}:{self.key}"
