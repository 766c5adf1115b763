"""``getUpdates`` long polling, for installations without a public HTTPS URL (``mode=polling``).

Each poll asks Telegram for the updates after the channel's offset, stores them as inbound events
(one per ``update_id``, the same dedupe key as the webhook's) and moves the offset past them in the
same transaction, so a crash between the two fetches the same updates again (deduplicated) and an
update is never skipped. The offset lives in ``Channel.state["telegram"]["offset"]`` and only moves
forward. A lock in the shared cache keeps two polls of one bot from overlapping (Telegram answers
409 Conflict to a second ``getUpdates``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from connectors.telegram.client import ApiError
from connectors.telegram.connector import ALLOWED_UPDATES, TelegramConnector
from inbox.models import Channel
from inbox.services.inbound import RawEvent, record_inbound_events

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollReport:
    fetched: int
    stored: int
    offset: int


def offset_of(channel: Channel) -> int:
    state = Channel.objects.filter(pk=channel.pk).values_list("state", flat=True).get() or {}
    return int((state.get("telegram") or {}).get("offset") or 0)


def _set_state(channel: Channel, **values: object) -> None:
    """Update the channel's Telegram bookkeeping under a row lock; the offset never moves back."""
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        state = dict(locked.state or {})
        entry = dict(state.get("telegram") or {})
        offset = values.pop("offset", None)
        if isinstance(offset, int) and offset > int(entry.get("offset") or 0):
            entry["offset"] = offset
        entry.update(values, polled_at=timezone.now().isoformat())
        state["telegram"] = entry
        Channel.objects.filter(pk=channel.pk).update(state=state)


def poll(channel: Channel, *, timeout: int | None = None) -> PollReport:
    """Fetch and store what is new for one polling bot; returns what it did."""
    connector = TelegramConnector(channel)
    wait = int(connector.setting("poll_timeout") or 0) if timeout is None else timeout
    lock = f"telegram:poll:{channel.pk}"
    if not cache.add(lock, 1, timeout=wait + 60):
        return PollReport(fetched=0, stored=0, offset=offset_of(channel))
    try:
        offset = offset_of(channel)
        params: dict[str, object] = {"timeout": wait, "allowed_updates": ALLOWED_UPDATES, "limit": 100}
        if offset:
            params["offset"] = offset
        try:
            updates = connector.api().call("getUpdates", params, timeout=wait + 15)
        except ApiError as exc:
            _set_state(channel, error=str(exc)[:500])
            logger.warning("getUpdates for channel %s failed: %s", channel.pk, exc)
            return PollReport(fetched=0, stored=0, offset=offset)
        events = []
        highest = offset - 1
        for update in updates or []:
            number = update.get("update_id") if isinstance(update, dict) else None
            if not isinstance(number, int):
                continue
            highest = max(highest, number)
            events.append(RawEvent(dedupe_key=f"update:{number}", body=json.dumps(update).encode()))
        with transaction.atomic():
            created = (
                record_inbound_events(
                    channel=channel, endpoint="inbound", events=events, content_type="application/json"
                )
                if events
                else []
            )
            _set_state(channel, offset=highest + 1 if events else None, error="")
        return PollReport(fetched=len(events), stored=sum(created), offset=max(offset, highest + 1))
    finally:
        cache.delete(lock)
