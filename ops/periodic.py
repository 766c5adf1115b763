"""When each periodic task (the sweepers, mailbox polling) last ran, recorded by a Celery signal.

The scheduler (beat) only sends; a task it sent may sit in a dead queue or crash every time. So the
time is recorded where it matters, when a worker *finished* the task successfully (``task_success``),
in Redis, without touching the tasks themselves. /healthz/deep and /metrics read it.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings

from ops import store

logger = logging.getLogger(__name__)

# A periodic task is late past this many of its intervals, and never sooner than STALE_MIN_SECONDS
# (a 3-second poll may queue behind a burst of work without anything being wrong).
STALE_INTERVALS = 3
STALE_MIN_SECONDS = 120.0


def interval_seconds(schedule: Any) -> float:
    if isinstance(schedule, int | float):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    run_every = getattr(schedule, "run_every", None)  # celery.schedules.schedule
    return run_every.total_seconds() if isinstance(run_every, timedelta) else 3600.0


def scheduled() -> dict[str, float]:
    """Task name -> its interval in seconds, from ``CELERY_BEAT_SCHEDULE``."""
    return {str(entry["task"]): interval_seconds(entry["schedule"]) for entry in settings.CELERY_BEAT_SCHEDULE.values()}


def stale_after(interval: float) -> float:
    return max(STALE_INTERVALS * interval, STALE_MIN_SECONDS)


def record_success(sender: Any = None, **kwargs: Any) -> None:
    """``task_success`` receiver: remember when a periodic task last completed."""
    name = getattr(sender, "name", "")
    if name not in scheduled():
        return
    try:
        store.client().hset(store.key("periodic"), name, f"{time.time():.3f}")
    except Exception as exc:  # Redis away: the next run records it
        logger.warning("could not record the run of %s: %s", name, exc)


def last_runs() -> dict[str, float]:
    """Task name -> the Unix time it last completed (absent: never, since Redis was emptied)."""
    raw = store.client().hgetall(store.key("periodic"))
    return {(name.decode() if isinstance(name, bytes) else str(name)): float(value) for name, value in raw.items()}
