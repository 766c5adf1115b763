"""The worker's half of webhooks out: drain one subscription's queue of one key; sweep what is due."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from hooks import services


@shared_task(acks_late=True)
def deliver_queue(subscription_id: int, ordering_key: str) -> None:
    retry_in = services.deliver_queue(subscription_id=subscription_id, ordering_key=ordering_key)
    if retry_in is not None and retry_in <= services.COUNTDOWN_LIMIT:
        # If this countdown is lost, the sweeper finds the row due.
        deliver_queue.apply_async(
            args=(subscription_id, ordering_key), countdown=max(retry_in, 0.0), queue=settings.PARLEY_HOOKS_QUEUE
        )


@shared_task
def sweep_deliveries() -> int:
    return services.enqueue_due()


@shared_task
def prune_deliveries() -> int:
    return services.prune_deliveries()
