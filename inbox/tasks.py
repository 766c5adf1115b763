"""Celery tasks: each takes ids, loads rows and calls one service. Idempotency lives in the data."""

from __future__ import annotations

import logging

from celery import shared_task

from inbox import services

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=2,
    retry_backoff_max=600,
    max_retries=services.MAX_EVENT_ATTEMPTS,
)
def process_inbound_event(event_id: int) -> None:
    services.process_inbound_event(event_id=event_id)


@shared_task(acks_late=True)
def process_inbound_events(event_ids: list[int]) -> None:
    """Several stored events at once (an import); any that may succeed later is retried on its own."""
    for event_id in services.process_inbound_events(event_ids=event_ids):
        process_inbound_event.apply_async(args=(event_id,), countdown=2)


@shared_task(acks_late=True, bind=True, max_retries=None)
def deliver_message(self, message_id: int) -> str:  # type: ignore[no-untyped-def]
    outcome = services.deliver_message(message_id=message_id)
    if outcome.retry_in is not None:
        # The row is back in ``queued``; if this retry is lost the sweeper picks the row up.
        self.apply_async(args=(message_id,), countdown=outcome.retry_in)
    return outcome.status


@shared_task
def sweep_outbox() -> int:
    return len(services.sweep_outbox())


@shared_task
def sweep_inbound_events() -> int:
    return len(services.sweep_inbound_events())


@shared_task
def wake_snoozed() -> int:
    return len(services.wake_snoozed())


@shared_task
def ping() -> str:
    return "pong"


def enqueue_inbound_event(event_id: int) -> None:
    """Schedule processing; a broker that is down only delays it (the sweeper re-enqueues)."""
    try:
        process_inbound_event.delay(event_id)
    except Exception:
        logger.exception("could not enqueue inbound event %s; the sweeper will", event_id)


def enqueue_inbound_events(event_ids: list[int]) -> None:
    """Schedule a batch of events as one task; a broker that is down only delays it (the sweeper)."""
    try:
        process_inbound_events.delay(event_ids)
    except Exception:
        logger.exception("could not enqueue inbound events %s…; the sweeper will", event_ids[:1])


def enqueue_delivery(message_id: int) -> None:
    try:
        deliver_message.delay(message_id)
    except Exception:
        logger.exception("could not enqueue delivery of message %s; the sweeper will", message_id)
