"""Webhooks out: subscriptions (a URL, the events it wants, a signing secret) and their deliveries.

A :class:`Delivery` is one event for one subscription, written in the transaction that made the
change (the outbox), then sent by the worker until the receiver answers 2xx or we give up.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def new_event_id() -> str:
    """The ``webhook-id`` a receiver deduplicates on: the same for every attempt and a replay."""
    return f"msg_{uuid.uuid4().hex}"


class Subscription(models.Model):
    """An integrator's URL and the events it wants; global (every team's) or one team's."""

    name = models.CharField(_("name"), max_length=100)
    url = models.URLField(_("URL"), max_length=1000)
    # Event names (``conversation.resolved``...); see inbox.signals.EVENTS.
    events: models.JSONField[list[str]] = models.JSONField(_("events"), default=list)
    team = models.ForeignKey(
        "inbox.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_subscriptions"
    )
    # ``whsec_`` + base64 of 24 random bytes. Shown once when made; stored as is, since signing needs
    # it (like the channels' secrets, the database is trusted with it), never shown back.
    secret = models.CharField(max_length=100, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    disabled_reason = models.CharField(_("why it was switched off"), max_length=300, blank=True)
    # Failed attempts in a row (any delivery) and since when; a success resets both.
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("webhook subscription")
        verbose_name_plural = _("webhook subscriptions")

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    """One event on its way to one subscription: the outbox row and its delivery log at once."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    # No database constraint: a process whose subscription cache (hooks.services) still holds a
    # subscription deleted a moment ago must not fail the writer's transaction; Django still deletes
    # a subscription's deliveries with it, and the worker skips a row whose subscription is gone.
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="deliveries", db_constraint=False
    )
    event_id = models.CharField(max_length=40, default=new_event_id)
    event = models.CharField(_("event"), max_length=40)
    payload = models.JSONField(default=dict)
    # Events with the same key (one conversation's, one customer's) go out in the order of ``id``.
    ordering_key = models.CharField(max_length=40, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField()
    # A worker sending this row holds it until then (a lease: one that died lets go by itself).
    leased_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(_("response code"), null=True, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [
            # The sweeper: pending rows that are due.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="hook_delivery_due"),
            # In order per key: the earliest pending row of one subscription's key.
            models.Index(
                fields=["subscription", "ordering_key", "id"], condition=Q(status="pending"), name="hook_delivery_queue"
            ),
            # The log of one subscription, newest first.
            models.Index(fields=["subscription", "-id"], name="hook_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.subscription_id} ({self.status})"
