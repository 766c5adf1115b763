"""SLA clocks, computed without the database: business time, and how a conversation's clock moves.

A clock counts, for each target (first response, next response, resolution), the **business
seconds spent** while it ran. It runs only while the customer waits on the team: the conversation
is open (not snoozed, not resolved), handled by people (not the bot) and the customer's latest
message is unanswered (``Conversation.waiting_since`` is set). Snoozing, our reply (the customer
owes the next word) and resolving stop it; the customer writing again, a wake-up or a reopen start
it again. Storing time *spent* (not a fixed due time) makes pauses, a changed policy and a
reopened conversation one rule: while running, a target is due at ``add_business(clock_at, target -
spent)``.

Business time is the team's opening hours and holidays (:class:`bot.hours.Schedule`), compared in
UTC: a daylight-saving change moves the UTC instants, never the hours people see. ``None`` as the
schedule means around the clock.

:func:`advance` moves a :class:`desk.models.ConversationSla` row (unsaved or saved, it does not
touch the database) to the conversation's state at ``now``; :mod:`desk.services` saves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.hours import Schedule

if TYPE_CHECKING:
    from desk.models import ConversationSla, SlaPolicy

TARGETS = ("first_response", "next_response", "resolution")


def _windows(schedule: Schedule, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Opening windows (UTC) that end after ``start``, in order and never overlapping."""
    cursor = start
    local_day = start.astimezone(schedule.zone).date() - timedelta(days=1)  # yesterday's may run past midnight
    for opens, closes in schedule.windows(local_day):
        opens = max(opens, cursor)
        if closes <= opens:
            continue
        yield opens, closes
        cursor = closes


def business_seconds(start: datetime, end: datetime, schedule: Schedule | None) -> float:
    """Seconds of business time between two instants (0 when ``end`` is not after ``start``)."""
    if end <= start:
        return 0.0
    if schedule is None:
        return (end - start).total_seconds()
    total = 0.0
    for opens, closes in _windows(schedule, start.astimezone(UTC)):
        if opens >= end:
            break
        total += (min(closes, end) - opens).total_seconds()
    return total


def add_business(start: datetime, seconds: float, schedule: Schedule | None) -> datetime | None:
    """The instant ``seconds`` of business time after ``start`` (``start`` itself when ``seconds``
    is not positive; the next opening counts from there). None: the team never opens again."""
    if schedule is None:
        return start + timedelta(seconds=max(seconds, 0.0))
    if seconds <= 0:
        return start
    left = timedelta(seconds=seconds)
    for opens, closes in _windows(schedule, start.astimezone(UTC)):
        if closes - opens >= left:
            return opens + left
        left -= closes - opens
    return None


@dataclass(frozen=True)
class State:
    """What of a conversation moves its clock."""

    open: bool  # not snoozed, not resolved
    resolved: bool
    human: bool  # handled by people, not the bot
    waiting_since: datetime | None  # the customer's oldest unanswered message


def running(state: State) -> bool:
    return state.open and state.human and state.waiting_since is not None


def _due(row: ConversationSla, target: str) -> datetime | None:
    return getattr(row, f"{target}_due")  # type: ignore[no-any-return]


def active_targets(row: ConversationSla) -> list[str]:
    """Targets the clock counts towards now: set by the policy, in play, not met, not breached."""
    policy = row.policy
    if policy is None:
        return []
    found = []
    for target in TARGETS:
        minutes = getattr(policy, f"{target}_minutes")
        if not minutes or getattr(row, f"{target}_at") or getattr(row, f"{target}_breached_at"):
            continue
        if target == "next_response" and row.next_response_started_at is None:
            continue
        if target == "first_response" and row.first_response_started_at is None:
            continue
        found.append(target)
    return found


def advance(
    row: ConversationSla,
    *,
    state: State,
    policy: SlaPolicy | None,
    now: datetime,
    schedule: Schedule | None,
    warn_share: float = 0.2,
) -> None:
    """Bring ``row`` to ``now`` under ``state``: count the business time since the last move, close
    what was answered or resolved, open what the customer's new message starts, and set the due
    times of what runs (None for what is paused)."""
    was_running = row.running and row.clock_at is not None
    # 1. What ran since the last move counts, under the policy it ran under.
    if was_running and row.clock_at is not None:
        spent = business_seconds(row.clock_at, now, schedule)
        for target in active_targets(row):
            setattr(row, f"{target}_spent", getattr(row, f"{target}_spent") + spent)
    elif row.paused_since is not None:
        row.paused_seconds += max((now - row.paused_since).total_seconds(), 0.0)
    row.policy = policy
    # 2. Transitions. The customer's message was answered (or the conversation resolved): the
    #    response targets in play are met now (a late answer stays breached).
    answered = row.waiting_since is not None and state.waiting_since is None
    if answered or state.resolved:
        for target in ("first_response", "next_response"):
            started = getattr(row, f"{target}_started_at")
            if started is not None and getattr(row, f"{target}_at") is None:
                setattr(row, f"{target}_at", now)
    if state.resolved:
        if row.resolution_at is None:
            row.resolution_at = now
    elif row.resolution_at is not None and row.resolution_breached_at is None:
        row.resolution_at = None  # reopened: the resolution clock goes on from where it stopped
    # The customer writes (again): the first time starts the first response; after an answer, a
    # new next-response spell starts from zero (a missed earlier spell stays in ``breaches``).
    if state.waiting_since is not None and state.waiting_since != row.waiting_since:
        if row.first_response_started_at is None:
            row.first_response_started_at = now
        elif row.first_response_at is not None:
            row.next_response_started_at = now
            row.next_response_at = None
            row.next_response_breached_at = None
            row.next_response_spent = 0.0
    row.waiting_since = state.waiting_since
    # 3. Run or pause from now on.
    row.running = running(state)
    row.clock_at = now
    row.paused_since = None if row.running else now
    refresh_dues(row, schedule=schedule, warn_share=warn_share)


def refresh_dues(row: ConversationSla, *, schedule: Schedule | None, warn_share: float = 0.2) -> None:
    """Due times of the targets that run (None for the others), the nearest one (``next_due``) and
    when the first of them turns amber (``soon_at``: ``warn_share`` of its length before it is due,
    in wall time — what the eye reads on the row)."""
    active = set(active_targets(row)) if row.running else set()
    policy = row.policy
    for target in TARGETS:
        due = None
        if target in active and policy is not None and row.clock_at is not None:
            left = getattr(policy, f"{target}_minutes") * 60 - getattr(row, f"{target}_spent")
            due = add_business(row.clock_at, left, schedule)
        setattr(row, f"{target}_due", due)
    dues = [(due, t) for t, due in ((t, _due(row, t)) for t in TARGETS) if due is not None]
    row.next_due = min(due for due, _t in dues) if dues else None
    warnings = [due - timedelta(seconds=getattr(policy, f"{t}_minutes") * 60 * warn_share) for due, t in dues if policy]
    row.soon_at = min(warnings) if warnings else None


def left_seconds(row: ConversationSla, target: str, *, now: datetime, schedule: Schedule | None) -> float | None:
    """Business seconds left on a target in play (negative once past), also while paused."""
    policy = row.policy
    if policy is None or target not in active_targets(row):
        return None
    spent = getattr(row, f"{target}_spent")
    if row.running and row.clock_at is not None:
        spent += business_seconds(row.clock_at, now, schedule)
        due = _due(row, target)
        if due is not None and due <= now:
            return -business_seconds(due, now, schedule) or -1.0
    return float(getattr(policy, f"{target}_minutes") * 60 - spent)


def level(row: ConversationSla, *, now: datetime) -> str:
    """``breached`` when a target in play is past due, or was missed and is still unanswered;
    ``soon`` when a running target is within its warning (``soon_at``); else ''."""
    for target in TARGETS:
        if getattr(row, f"{target}_breached_at") and not getattr(row, f"{target}_at"):
            return "breached"
    if row.next_due is not None and row.next_due <= now:
        return "breached"
    if row.soon_at is not None and row.soon_at <= now:
        return "soon"
    return ""
