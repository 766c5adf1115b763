"""Celery tasks: each takes ids, loads rows and calls one service. Idempotency lives in the data."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from celery import shared_task

from inbox.services import assignment, conversations, inbound, outbound
from inbox.transport import NotYet

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    bind=True,
    autoretry_for=(Exception,),
    retry_backoff=2,
    retry_backoff_max=600,
    max_retries=inbound.MAX_EVENT_ATTEMPTS,
)
def process_inbound_event(self, event_id: int) -> None:  # type: ignore[no-untyped-def]
    try:
        inbound.process_inbound_event(event_id=event_id)
    except NotYet as exc:
        # Waiting for our own send's answer, seconds away: soon again, not after a failure's backoff.
        raise self.retry(exc=exc, countdown=inbound.not_yet_countdown(self.request.retries)) from exc


@shared_task(acks_late=True)
def process_inbound_events(event_ids: list[int]) -> None:
    """Several stored events at once (an import); any that may succeed later is retried on its own."""
    for event_id in inbound.process_inbound_events(event_ids=event_ids):
        process_inbound_event.apply_async(args=(event_id,), countdown=2)


@shared_task(acks_late=True, bind=True, max_retries=None)
def deliver_message(self, message_id: int) -> str:  # type: ignore[no-untyped-def]
    outcome = outbound.deliver_message(message_id=message_id)
    if outcome.retry_in is not None:
        # The row is back in ``queued``; if this retry is lost the sweeper picks the row up.
        self.apply_async(args=(message_id,), countdown=outcome.retry_in)
    return outcome.status


@shared_task
def sweep_outbox() -> int:
    return len(outbound.sweep_outbox())


@shared_task
def sweep_inbound_events() -> int:
    return len(inbound.sweep_inbound_events())


@shared_task(ignore_result=True)
def drain_webhook_spool() -> int:
    """Webhooks spooled while the database was down (inbox.spool), stored now: on this machine's disk."""
    return inbound.drain_spool()


@shared_task
def release_scheduled() -> int:
    """Send later: put the scheduled replies that are due into the outbox, each once."""
    return len(outbound.release_scheduled())


@shared_task
def wake_snoozed() -> int:
    return len(conversations.wake_snoozed())


# Named as it was when it lived in inbox/assignment.py, so that queued runs and schedules still find it.
@shared_task(name="inbox.assignment.route_waiting", ignore_result=True)
def route_waiting() -> None:
    """The scheduler's safety net: requeue offline operators' work, then route every team's queue."""
    assignment.requeue_offline()
    assignment.route_all()


@shared_task
def ping() -> str:
    return "pong"


def enqueue_inbound_event(event_id: int) -> None:
    """Schedule processing; a broker that is down only delays it (the sweeper re-enqueues)."""
    try:
        process_inbound_event.delay(event_id)
    except Exception:
        logger.exception("could not enqueue inbound event %s; the sweeper will", event_id)


class Coalescer:
    """Hands ids on at once when they come one by one, and several at a time when they crowd.

    The first id after a quiet ``window`` goes at once (no added latency at ordinary rates); ids
    that arrive within the window of the last hand-over wait for its end and go together. For
    webhooks that means one task for several messages when they come faster than one per window,
    so Celery's own work per task is shared. Ids wait in memory only for the window: if the
    process dies meanwhile their events are stored and pending, and the sweeper enqueues them.
    """

    def __init__(self, send: Callable[[list[int]], None], window: float) -> None:
        self.send = send
        self.window = window
        self.condition = threading.Condition()
        self.pending: list[int] = []
        self.last = float("-inf")
        self.pid = 0

    def add(self, pk: int) -> None:
        with self.condition:
            now = time.monotonic()
            if self.pending or now - self.last < self.window:
                self.pending.append(pk)
                if self.pid != os.getpid():  # one flusher per process, started on first need
                    self.pid = os.getpid()
                    threading.Thread(target=self._flush_forever, name="parley-enqueue", daemon=True).start()
                self.condition.notify()
                return
            self.last = now
        self.send([pk])

    def _flush_forever(self) -> None:
        while True:
            with self.condition:
                while not self.pending:
                    self.condition.wait()
                delay = self.last + self.window - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self.condition:
                batch, self.pending = self.pending, []
                self.last = time.monotonic()
            self.send(batch)


def _enqueue_webhook_events(event_ids: list[int]) -> None:
    if len(event_ids) == 1:
        enqueue_inbound_event(event_ids[0])
    else:
        enqueue_inbound_events(event_ids)


# Webhooks closer together than this share a task (at 100/s, about three to a task).
WEBHOOK_WINDOW = 0.03
_webhooks = Coalescer(_enqueue_webhook_events, WEBHOOK_WINDOW)


def enqueue_webhook_event(event_id: int) -> None:
    """Schedule a webhook's event: at once when webhooks are few, with its neighbours when many."""
    _webhooks.add(event_id)


def enqueue_inbound_events(event_ids: list[int]) -> None:
    """Schedule events ``EVENTS_PER_TASK`` to a task; a broker that is down only delays them.

    Celery's own work per task is then shared, and so are the loading, the marking and the
    broadcast (see ``inbound.process_inbound_events``). The sweeper enqueues what was not.
    """
    for start in range(0, len(event_ids), inbound.EVENTS_PER_TASK):
        batch = event_ids[start : start + inbound.EVENTS_PER_TASK]
        try:
            process_inbound_events.delay(batch)
        except Exception:
            logger.exception("could not enqueue inbound events %s…; the sweeper will", batch[:1])


def enqueue_delivery(message_id: int) -> None:
    try:
        deliver_message.delay(message_id)
    except Exception:
        logger.exception("could not enqueue delivery of message %s; the sweeper will", message_id)
