"""What waits: inbound events, the outbox and Celery's queues, read cheaply at the moment of asking.

Every query here is served by an index (``inbound_status``: status, received_at; ``msg_outbox``:
status, status_changed_at): counts of a few statuses and the oldest row of one, whatever the size
of the tables. Shared by /metrics and /healthz/deep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from celery import current_app
from django.db.models import Count, Min
from django.utils import timezone

from inbox.models import InboundEvent, Message
from ops import store

INBOUND_STATES = (InboundEvent.Status.PENDING, InboundEvent.Status.FAILED)
OUTBOX_STATES = (Message.Status.QUEUED, Message.Status.SENDING, Message.Status.FAILED)


@dataclass(frozen=True)
class Backlog:
    inbound: dict[str, int]  # pending, failed
    oldest_pending_seconds: float  # 0 when nothing is pending
    outbox: dict[str, int]  # queued, sending, failed
    oldest_queued_seconds: float


def age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


def backlog() -> Backlog:
    """Four indexed queries. Raises when the database does not answer."""
    now = timezone.now()
    inbound: dict[str, int] = {str(state): 0 for state in INBOUND_STATES}
    counted = InboundEvent.objects.filter(status__in=INBOUND_STATES).values_list("status").annotate(n=Count("id"))
    inbound.update({str(status): int(n) for status, n in counted.order_by()})
    oldest_event = (
        InboundEvent.objects.filter(status=InboundEvent.Status.PENDING)
        .order_by("received_at")
        .values_list("received_at", flat=True)
        .first()
    )
    outbox: dict[str, int] = {str(state): 0 for state in OUTBOX_STATES}
    sent = Message.objects.filter(status__in=OUTBOX_STATES).values_list("status").annotate(n=Count("id"))
    outbox.update({str(status): int(n) for status, n in sent.order_by()})
    oldest_queued = Message.objects.filter(status=Message.Status.QUEUED).aggregate(at=Min("created_at"))["at"]
    return Backlog(
        inbound=inbound,
        oldest_pending_seconds=age(oldest_event, now),
        outbox=outbox,
        oldest_queued_seconds=age(oldest_queued, now),
    )


def celery_queue_names() -> list[str]:
    """The default queue and every queue named in the routes or the declared queues."""
    conf = current_app.conf
    names = {str(conf.task_default_queue)}
    routes = conf.task_routes or {}
    if isinstance(routes, dict):
        names.update(str(route["queue"]) for route in routes.values() if isinstance(route, dict) and "queue" in route)
    names.update(str(queue.name) for queue in conf.task_queues or ())
    return sorted(names)


def celery_queues() -> tuple[dict[str, int], int]:
    """Tasks waiting per queue, and tasks taken by a worker but not yet acknowledged (with acks_late,
    the ones running). Read from the broker (Redis lists, kombu's ``unacked`` hash). Raises when
    Redis does not answer."""
    pipe = store.client().pipeline(transaction=False)
    names = celery_queue_names()
    for name in names:
        pipe.llen(name)
    pipe.hlen("unacked")
    *lengths, unacked = pipe.execute()
    return dict(zip(names, (int(n) for n in lengths), strict=True)), int(unacked)
