"""The worker's side of the report rollups: refresh what events marked."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from reports import rollups


@shared_task(acks_late=True, ignore_result=True)
def refresh_rollups() -> int:
    """Recompute the marked conversations, days and customers; batches until nothing is left.

    The "scheduled" key goes first, so an event that comes in while this runs schedules the next
    refresh instead of relying on this one to have seen it.
    """
    cache.delete("reports:refresh-scheduled")
    done = 0
    while taken := rollups.refresh_pending():
        done += taken
    return done
