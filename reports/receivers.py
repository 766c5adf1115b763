"""The core's domain events, as the reports hear them: mark what changed, let the worker recompute.

Receivers run after the writer's commit, in the process that wrote (web or worker). They do one
upsert per touched thing (:func:`reports.rollups.mark`) and schedule one refresh task for the
whole burst: the first mark after a refresh schedules it (a cache key says one is on its way), the
rest ride along. A receiver never fails the writer: a lost schedule is picked up by the scheduler's
minute (``reports-refresh`` in ``CELERY_BEAT_SCHEDULE``), and the marks stay in the database.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache

from inbox import signals
from reports import rollups, tasks

logger = logging.getLogger(__name__)

SCHEDULED = "reports:refresh-scheduled"


def schedule() -> None:
    try:
        if cache.add(SCHEDULED, 1, timeout=60):
            # The first event of a burst waits this long: the day is recomputed once per burst.
            tasks.refresh_rollups.apply_async(countdown=settings.REPORTS_REFRESH_SECONDS)
    except Exception:  # the broker or the cache is down: the scheduler's sweep refreshes later
        logger.exception("could not schedule the reports refresh")


def _marked(kind: str, *keys: object) -> None:
    _marked_many([(kind, key) for key in keys])


def _marked_many(touched: list[tuple[str, object]]) -> None:
    touched = [(kind, key) for kind, key in touched if key is not None]
    try:
        rollups.mark_many(touched)
    except Exception:  # never the writer's problem; a rebuild repairs what a lost mark missed
        logger.exception("could not mark %s for the reports", touched)
        return
    schedule()


def on_message(
    sender: Any, *, conversation_id: int, customer_id: int | None = None, kind: str = "", **payload: Any
) -> None:
    if kind == "note":  # private notes are in no figure
        return
    customer = [("customer", customer_id)] if kind == "inbound" and customer_id else []
    _marked_many([*customer, ("conversation", conversation_id)])  # one statement


def on_conversation(sender: Any, *, conversation_id: int, **payload: Any) -> None:
    _marked("conversation", conversation_id)


def on_merge(sender: Any, *, customer_id: int, source_id: int, **payload: Any) -> None:
    _marked("customer", customer_id, source_id)


def connect() -> None:
    signals.message_created.connect(on_message, dispatch_uid="reports.message_created")
    for event in (
        signals.message_status_changed,
        signals.conversation_created,
        signals.conversation_handed_off,
        signals.conversation_resolved,
        signals.conversation_reopened,
    ):
        event.connect(on_conversation, dispatch_uid=f"reports.{event.name}")
    signals.customer_merged.connect(on_merge, dispatch_uid="reports.customer_merged")
