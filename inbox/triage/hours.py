"""Business hours: is a team open at a moment, and when does it next open.

Opening times are wall-clock times in the team's time zone; every comparison is made in UTC, so a
daylight-saving change moves the UTC instants, never the opening hours people see. A wall-clock
time that does not exist on the day clocks spring forward is read with the offset before the
change (02:30 becomes 03:30), the usual convention.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from inbox import services, signals
from inbox.models import Conversation, Message, Team
from inbox.triage.models import BusinessHours

logger = logging.getLogger(__name__)

# How far ahead next_opening looks before it gives up (holidays can close a team for weeks).
HORIZON_DAYS = 400


@dataclass(frozen=True)
class Schedule:
    """A team's hours, loaded once: (weekday, opens, closes) intervals and holiday dates."""

    zone: ZoneInfo
    intervals: tuple[tuple[int, time, time], ...]
    holidays: frozenset[date]
    closed_message: str = ""

    def windows(self, start: date) -> Iterator[tuple[datetime, datetime]]:
        """Opening windows in UTC for each local day from ``start`` on, in order."""
        for offset in range(HORIZON_DAYS + 1):
            day = start + timedelta(days=offset)
            if day in self.holidays:
                continue
            for weekday, opens, closes in self.intervals:
                if weekday != day.weekday():
                    continue
                end_day = day if closes > opens else day + timedelta(days=1)
                yield _utc(day, opens, self.zone), _utc(end_day, closes, self.zone)


def _utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("unknown time zone %r, using UTC", name)
        return ZoneInfo("UTC")


def schedule_for(team: Team) -> Schedule | None:
    """The team's schedule, or None when it keeps no business hours (open around the clock)."""
    hours = BusinessHours.objects.filter(team=team).first()
    if hours is None:
        return None
    return Schedule(
        zone=_zone(team.timezone),
        intervals=tuple(hours.intervals.order_by("weekday", "opens").values_list("weekday", "opens", "closes")),
        holidays=frozenset(hours.holidays.values_list("date", flat=True)),
        closed_message=hours.closed_message,
    )


def _local_day_before(at: datetime, zone: ZoneInfo) -> date:
    # Start a day early: yesterday's interval may run past midnight into today.
    return at.astimezone(zone).date() - timedelta(days=1)


def is_open(team: Team, at: datetime, *, schedule: Schedule | None = None) -> bool:
    schedule = schedule or schedule_for(team)
    if schedule is None:
        return True
    at = at.astimezone(UTC)
    for start, end in schedule.windows(_local_day_before(at, schedule.zone)):
        if start > at:
            return False
        if start <= at < end:
            return True
    return False


def next_opening(team: Team, at: datetime, *, schedule: Schedule | None = None) -> datetime | None:
    """When the team is next open, in its time zone: ``at`` itself if open now; None if it never opens."""
    schedule = schedule or schedule_for(team)
    if schedule is None:
        return at
    at = at.astimezone(UTC)
    for start, end in schedule.windows(_local_day_before(at, schedule.zone)):
        if start <= at < end:
            return at.astimezone(schedule.zone)
        if start > at:
            return start.astimezone(schedule.zone)
    return None


def closed_notice(team: Team, at: datetime, *, schedule: Schedule | None = None) -> str | None:
    """What to tell a customer who writes at ``at``; None while the team is open."""
    schedule = schedule or schedule_for(team)
    if schedule is None or is_open(team, at, schedule=schedule):
        return None
    if schedule.closed_message:
        return schedule.closed_message
    back = next_opening(team, at, schedule=schedule)
    if back is None:
        return _("We're closed at the moment. Your message is in our queue and a person will reply as soon as we can.")
    return _(
        "We're closed at the moment. Your message is in our queue and a person will reply "
        "when we're back: %(when)s (%(zone)s)."
    ) % {"when": formats.date_format(back, "l j F, H:i"), "zone": back.tzname()}


AFTER_HOURS = "after_hours"


def already_told(conversation: Conversation) -> bool:
    """Whether this conversation was told about the team's hours (by the system or by the bot)."""
    return Message.objects.filter(
        Q(metadata__has_key=AFTER_HOURS) | Q(metadata__bot__has_key=AFTER_HOURS), conversation=conversation
    ).exists()


def pending_notice(*, conversation: Conversation, at: datetime | None = None, language: str = "") -> str | None:
    """The closed notice this conversation should get now: None while open or once it was told."""
    if conversation.team is None:
        return None
    with translation.override(language or None):
        text = closed_notice(conversation.team, at or timezone.now())
    if text is None or already_told(conversation):
        return None
    return text


def tell_when_back(*, conversation: Conversation, at: datetime | None = None, language: str = "") -> Message | None:
    """Outside the team's hours, tell the customer once per conversation when people are back."""
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",)).select_related("team").get(pk=conversation.pk)
        )
        text = pending_notice(conversation=conversation, at=at, language=language)
        if text is None:
            return None
        return services.reply(
            conversation=conversation,
            text=text,
            by=None,
            sender=Message.Sender.SYSTEM,
            metadata={AFTER_HOURS: True},
        )


@receiver(signals.conversation_queued, dispatch_uid="triage-after-hours")
def on_conversation_queued(sender: Any, conversation_id: int, **kwargs: Any) -> None:
    """A conversation waits for the team (bot hand-off, bot off, unassigned): say when people are back."""
    conversation = Conversation.objects.select_related("team").filter(pk=conversation_id).first()
    # Only a customer who is waiting for an answer is told; a quiet thread is left alone.
    if conversation is None or conversation.waiting_since is None:
        return
    try:
        tell_when_back(conversation=conversation)
    except Exception:
        # Queueing must not fail because the notice could not be sent.
        logger.exception("could not tell conversation %s when the team is back", conversation_id)
