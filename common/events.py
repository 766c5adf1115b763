"""Domain events: a named Django signal sent once, after the transaction that made the change commits.

A writer (a service: the only writers) calls :func:`send_on_commit` inside its transaction. Two
things happen:

- ``recorded`` is sent at once, inside the writer's transaction, with the event's name and payload.
  It is for the one kind of receiver that must write in that same transaction: an outbox (webhooks
  out), so the change and the fact that it must be announced commit together or not at all — a
  crash right after commit loses nothing.
- the event itself is sent after commit (``transaction.on_commit``); on rollback it is never sent.
  Receivers (automation rules, anything that reacts) read what they need by id.

The payload is ids and a few small values (a kind, an old and a new status), never model instances:
receivers may run in another process later, and must read the committed state anyway.

The helper sits at the bottom of the import layers because customers (below the inbox) write
customers; the events themselves are listed in one place, :mod:`inbox.signals`.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Sent inside the writer's transaction for every event. kwargs: event (the name), payload (a dict).
recorded = Signal()


class Event(Signal):
    """A domain event: a signal with a stable, dotted name (``conversation.resolved``)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __repr__(self) -> str:
        return f"<Event {self.name}>"


def _send(event: Event, payload: dict[str, Any]) -> None:
    for receiver, result in event.send_robust(sender=event, event=event.name, **payload):
        if isinstance(result, Exception):
            logger.error("receiver %r of %s failed", receiver, event.name, exc_info=result)


def send_on_commit(event: Event, **payload: Any) -> None:
    """Record ``event`` in the current transaction and send it once that transaction commits.

    Outside a transaction (autocommit) both happen at once. A failing receiver is logged and never
    breaks the writer nor the other receivers.
    """
    recorded.send(sender=event, event=event.name, payload=payload)
    transaction.on_commit(partial(_send, event, payload))
