"""Webhooks out listen to every domain event inside the writer's transaction (the outbox)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver

from common.events import recorded
from hooks.models import Subscription
from hooks.services import forget_subscriptions, record_event


@receiver(recorded, dispatch_uid="hooks-record-event")
def on_event_recorded(sender: Any, event: str, payload: Mapping[str, Any], **kwargs: Any) -> None:
    record_event(event=event, payload=payload)


@receiver(post_delete, sender=Subscription, dispatch_uid="hooks-subscription-deleted")
def on_subscription_deleted(sender: Any, **kwargs: Any) -> None:
    forget_subscriptions()
