"""Business hours: is a team open at a moment, and when does it next open.

Opening times are wall-clock times in the team's time zone; every comparison is made in UTC, so a
daylight-saving change moves the UTC instants, never the opening hours people see. A wall-clock
time that does not exist on the day clocks spring forward is read with the offset before the
change (02:30 becomes 03:30), the usual convention.
"""

from __future__ import annotations

import logging
import time as monotonic_clock
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.cache import cache
from django.db import transaction
from django.db.models import Model, Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from bot.models import BusinessHours, Holiday, OpeningInterval
from inbox import signals
from inbox.models import Conversation, Message, Team
from inbox.services import outbound

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


# -- a per-process cache of schedules, for the per-message "is the team open now?" ----------------
#
# Each entry is kept under the team's hours version, a token in the shared cache (Redis) that every
# change to the team, its hours, intervals or holidays replaces (at once, and again on commit so a
# process that read the old rows just before the commit does not keep them). Reading it costs one
# cache GET instead of the three queries of ``schedule_for``. Writes that skip model signals
# (``QuerySet.update``) are caught within SCHEDULE_CACHE_SECONDS.

SCHEDULE_CACHE_SECONDS = 300.0
_schedules: dict[int, tuple[str, float, Schedule | None]] = {}


def _version_key(team_id: int) -> str:
    return f"bot:hours-version:{team_id}"


def _hours_version(team_id: int) -> str | None:
    """The team's hours version; None when the shared cache cannot be read (then nothing is cached)."""
    key = _version_key(team_id)
    try:
        version = cache.get(key)
        if version is None:
            cache.add(key, uuid.uuid4().hex, timeout=None)
            version = cache.get(key)
    except Exception:
        logger.warning("cannot read the hours version of team %s; loading its hours", team_id, exc_info=True)
        return None
    return None if version is None else str(version)


def cached_schedule(team_id: int) -> Schedule | None:
    """The team's schedule (None: open around the clock, or no such team), from this process's cache."""
    version = _hours_version(team_id)
    now = monotonic_clock.monotonic()
    hit = _schedules.get(team_id)
    if version is not None and hit is not None and hit[0] == version and now - hit[1] < SCHEDULE_CACHE_SECONDS:
        return hit[2]
    team = Team.objects.filter(pk=team_id).first()
    schedule = schedule_for(team) if team is not None else None
    if version is not None:
        _schedules[team_id] = (version, now, schedule)
    return schedule


def hours_changed(team_id: int) -> None:
    """Drop every process's cached schedule of the team: now, and again once the change commits."""

    def bump() -> None:
        _schedules.pop(team_id, None)
        try:
            cache.set(_version_key(team_id), uuid.uuid4().hex, timeout=None)
        except Exception:
            logger.warning("cannot bump the hours version of team %s", team_id, exc_info=True)

    bump()
    transaction.on_commit(bump)


@receiver(post_save, sender=Team, dispatch_uid="hours-team-saved")
@receiver(post_delete, sender=Team, dispatch_uid="hours-team-deleted")
def _team_changed(sender: Any, instance: Team, **kwargs: Any) -> None:
    hours_changed(instance.pk)  # its time zone is part of the schedule


@receiver(post_save, sender=BusinessHours, dispatch_uid="hours-saved")
@receiver(post_delete, sender=BusinessHours, dispatch_uid="hours-deleted")
def _hours_changed(sender: Any, instance: BusinessHours, **kwargs: Any) -> None:
    hours_changed(instance.team_id)


def _part_changed(sender: Any, instance: Model, **kwargs: Any) -> None:
    hours_id = getattr(instance, "hours_id", None)
    if hours_id is None:
        return
    team_id = BusinessHours.objects.filter(pk=hours_id).values_list("team_id", flat=True).first()
    if team_id is not None:
        hours_changed(team_id)


for _model in (OpeningInterval, Holiday):
    post_save.connect(_part_changed, sender=_model, dispatch_uid=f"hours-part-saved-{_model.__name__}")
    post_delete.connect(_part_changed, sender=_model, dispatch_uid=f"hours-part-deleted-{_model.__name__}")


def _local_day_before(at: datetime, zone: ZoneInfo) -> date:
    # Start a day early: yesterday's interval may run past midnight into today.
    return at.astimezone(zone).date() - timedelta(days=1)


def is_open(team: Team, at: datetime, *, schedule: Schedule | None = None) -> bool:
    schedule = schedule or schedule_for(team)
    if schedule is None:
        return True
    return is_open_by(schedule, at)


def is_open_by(schedule: Schedule, at: datetime) -> bool:
    """Whether ``schedule`` is open at ``at``."""
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
        return outbound.reply(
            conversation=conversation,
            text=text,
            by=None,
            sender=Message.Sender.SYSTEM,
            metadata={AFTER_HOURS: True},
        )


@receiver(signals.conversation_queued, dispatch_uid="triage-after-hours")
def on_conversation_queued(sender: Any, conversation_id: int, **kwargs: Any) -> None:
    """A conversation waits for the team (bot hand-off, bot off, unassigned): say when people are back."""
    if "team_id" in kwargs:  # receive_message says which team: most messages end here, no query
        team_id = kwargs["team_id"]
        if team_id is None:
            return
        schedule = cached_schedule(team_id)
        if schedule is None or is_open_by(schedule, timezone.now()):
            return
    conversation = Conversation.objects.select_related("team").filter(pk=conversation_id).first()
    # Only a customer who is waiting for an answer is told; a quiet thread is left alone.
    if conversation is None or conversation.waiting_since is None:
        return
    try:
        tell_when_back(conversation=conversation)
    except Exception:
        # Queueing must not fail because the notice could not be sent.
        logger.exception("could not tell conversation %s when the team is back", conversation_id)
