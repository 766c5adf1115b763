"""/healthz/deep: everything /healthz checks, plus how long work waits and whether the sweepers run.

``/healthz`` stays cheap and public for load balancers. This one is for a monitor that pages
someone: it answers 503 when a part is down or when something is stale — an inbound event or a
reply waiting longer than ``HEALTH_MAX_QUEUE_SECONDS``, or a periodic task (sweeper, poll) that
has not completed for ``periodic.stale_after`` its interval.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection

from ops import periodic, queues, store

logger = logging.getLogger(__name__)

Check = dict[str, Any]


def timed(check: Any) -> Check:
    """Run one check; its failure is a state with the exception's class, the details go to the log."""
    started = time.monotonic()
    try:
        result: Check = check()
    except Exception as exc:
        logger.warning("deep health check %s failed", getattr(check, "__name__", check), exc_info=True)
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True, "vendor": connection.vendor}


def redis() -> Check:
    return {"ok": bool(store.client().ping())}


def workers() -> Check:
    replies = current_app.control.ping(timeout=1.0)
    return {"ok": bool(replies), "workers": len(replies)}


def backlog() -> Check:
    found = queues.backlog()
    limit = float(settings.HEALTH_MAX_QUEUE_SECONDS)
    inbound_ok = found.oldest_pending_seconds <= limit
    outbox_ok = found.oldest_queued_seconds <= limit
    return {
        "ok": inbound_ok and outbox_ok,
        "max_seconds": limit,
        "inbound": {
            **found.inbound,
            "oldest_pending_seconds": round(found.oldest_pending_seconds, 1),
            "ok": inbound_ok,
        },
        "outbox": {**found.outbox, "oldest_queued_seconds": round(found.oldest_queued_seconds, 1), "ok": outbox_ok},
    }


def celery_queues() -> Check:
    lengths, unacked = queues.celery_queues()
    return {"ok": True, "waiting": lengths, "unacked": unacked}


def sweepers() -> Check:
    now = time.time()
    runs = periodic.last_runs()
    tasks: dict[str, Check] = {}
    for name, interval in sorted(periodic.scheduled().items()):
        limit = periodic.stale_after(interval)
        last = runs.get(name)
        age = None if last is None else round(now - last, 1)
        tasks[name] = {"ok": age is not None and age <= limit, "seconds_ago": age, "stale_after": limit}
    return {"ok": all(task["ok"] for task in tasks.values()), "tasks": tasks}


def report() -> tuple[bool, dict[str, Check]]:
    checks = {
        "database": timed(database),
        "redis": timed(redis),
        "worker": timed(workers),
        "backlog": timed(backlog),
        "celery": timed(celery_queues),
        "sweepers": timed(sweepers),
    }
    return all(bool(check["ok"]) for check in checks.values()), checks
