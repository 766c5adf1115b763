"""Auto-assignment: waiting conversations go to online operators of their team with free capacity.

Oldest waiting first; among operators, the least loaded first, then the one who was given work
longest ago (round robin among equals). Every assignment goes through
``conversations.assign_conversation`` so the thread records it and the assignee sees it live.

It runs when a conversation is queued, when an operator's capacity frees, and from the scheduler
every 30 s as a safety net; each run first asks, in one unlocked query, whether anyone of the team
has room (:func:`has_free_seat`), so a message that nobody can take costs no locks. Two workers routing the same team at once are safe: the team's online
operators are locked (in id order, so teams that share operators cannot deadlock) and waiting
conversations are taken with ``skip_locked``, so an operator is never filled beyond capacity and a
conversation is never assigned twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Max, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.dispatch import receiver
from django.utils import timezone

from inbox import signals
from inbox.models import Conversation, Message, Operator
from inbox.services import conversations

logger = logging.getLogger(__name__)

# How long an operator may be offline before their open work goes back to the queue.
OFFLINE_GRACE = timedelta(minutes=5)
# How far back the round robin looks for an operator's last assignment.
ROUND_ROBIN_WINDOW = timedelta(days=1)
# A customer waiting longest first; a conversation nobody waits on (the team spoke last) after them,
# on every database (PostgreSQL and SQLite sort NULL at opposite ends by default).
OLDEST_WAITING_FIRST = (F("waiting_since").asc(nulls_last=True), "last_message_at", "pk")


@dataclass
class _Seat:
    operator: Operator
    load: int
    last_assigned_at: datetime | None

    @property
    def free(self) -> int:
        return self.operator.capacity - self.load

    def key(self) -> tuple[int, float, int]:
        # Least loaded first; then the one given work longest ago (never counts as longest); then id.
        last = self.last_assigned_at.timestamp() if self.last_assigned_at else float("-inf")
        return (self.load, last, self.operator.pk)


def waiting_conversations(*, team_id: int) -> Any:
    """A team's conversations waiting for a person, oldest waiting first."""
    return Conversation.objects.filter(
        team_id=team_id,
        handler=Conversation.Handler.HUMAN,
        assignee__isnull=True,
        status=Conversation.Status.OPEN,
    ).order_by(*OLDEST_WAITING_FIRST)


def has_free_seat(team_id: int) -> bool:
    """Whether an online operator of the team has room: one unlocked, indexed query, no transaction.

    The cheap gate before the locked routing. A "no" can be stale only if capacity frees or an
    operator comes online at this instant; those changes route the team themselves after they
    commit (``capacity_freed``), and by then they see what this caller committed. The scheduler's
    sweep is the safety net. A "yes" is checked again under the locks in :func:`_seats`.
    """
    load = (
        Conversation.objects.filter(assignee=OuterRef("pk"), status=Conversation.Status.OPEN)
        .order_by()
        .values("assignee")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Operator.objects.filter(teams=team_id, presence=Operator.Presence.ONLINE, is_active=True, capacity__gt=0)
        .annotate(load=Coalesce(Subquery(load), Value(0)))
        .filter(capacity__gt=F("load"))
        .exists()
    )


def _seats(team_id: int, now: datetime) -> list[_Seat]:
    """The team's online operators with free capacity, locked for this transaction, in turn order."""
    # Lock first (FOR UPDATE cannot carry GROUP BY on PostgreSQL), then count the load.
    operators = list(
        Operator.objects.select_for_update()
        .filter(teams=team_id, presence=Operator.Presence.ONLINE, is_active=True, capacity__gt=0)
        .order_by("pk")
    )
    if not operators:
        return []
    load = dict(
        Conversation.objects.filter(assignee__in=operators, status=Conversation.Status.OPEN)
        .values_list("assignee")
        .annotate(n=Count("pk"))
        .values_list("assignee", "n")
    )
    last_assigned = dict(
        Message.objects.filter(
            kind=Message.Kind.ACTIVITY,
            created_at__gte=now - ROUND_ROBIN_WINDOW,
            metadata__action="assigned",
            metadata__to__in=[operator.pk for operator in operators],
        )
        .values_list("metadata__to")
        .annotate(last=Max("created_at"))
        .values_list("metadata__to", "last")
    )
    seats = [_Seat(operator, load.get(operator.pk, 0), last_assigned.get(operator.pk)) for operator in operators]
    return [seat for seat in seats if seat.free > 0]


def assign_next(*, team_id: int, now: datetime | None = None) -> list[int]:
    """Assign the team's waiting conversations while someone online has room; returns their ids."""
    now = now or timezone.now()
    assigned: list[int] = []
    if not has_free_seat(team_id):
        return assigned  # nobody can take work: no transaction, no locks
    with transaction.atomic():
        seats = _seats(team_id, now)
        if not seats:
            return assigned
        room = sum(seat.free for seat in seats)
        waiting = waiting_conversations(team_id=team_id)
        if connection.features.has_select_for_update_skip_locked:
            waiting = waiting.select_for_update(skip_locked=True)
        for conversation in list(waiting[:room]):
            seats.sort(key=_Seat.key)
            seat = seats[0]
            conversations.assign_conversation(conversation=conversation, operator=seat.operator, by=None)
            assigned.append(conversation.pk)
            seat.load += 1
            seat.last_assigned_at = timezone.now()  # as the activity just recorded says
            if seat.free <= 0:
                seats.remove(seat)
            if not seats:
                break
    if assigned:
        logger.info("assigned %s conversation(s) of team %s", len(assigned), team_id)
    return assigned


def requeue_offline(*, now: datetime | None = None) -> list[int]:
    """Put back in the queue the open work of operators offline for longer than the grace period."""
    now = now or timezone.now()
    gone = Operator.objects.filter(
        presence=Operator.Presence.OFFLINE, presence_changed_at__lte=now - OFFLINE_GRACE
    ).values("pk")
    stranded = list(
        Conversation.objects.filter(assignee__in=gone, status=Conversation.Status.OPEN)
        .order_by(*OLDEST_WAITING_FIRST)
        .values_list("pk", "team_id")[:500]
    )
    requeued: list[int] = []
    teams: set[int] = set()
    for pk, team_id in stranded:
        conversation = Conversation.objects.get(pk=pk)
        conversations.unassign_conversation(conversation=conversation, by=None, reason="operator offline")
        requeued.append(pk)
        if team_id is not None:
            teams.add(team_id)
    # The queued signal routes each one after commit too; routing here keeps the sweep self-contained.
    for team_id in sorted(teams):
        assign_next(team_id=team_id, now=now)
    return requeued


def route_all(*, now: datetime | None = None) -> list[int]:
    """Route every team that has waiting conversations (the scheduler's safety net)."""
    now = now or timezone.now()
    team_ids = (
        Conversation.objects.filter(
            handler=Conversation.Handler.HUMAN,
            assignee__isnull=True,
            status=Conversation.Status.OPEN,
            team__isnull=False,
        )
        .values_list("team_id", flat=True)
        .distinct()
    )
    assigned: list[int] = []
    for team_id in sorted(set(team_ids)):
        assigned += assign_next(team_id=team_id, now=now)
    return assigned


# -- hooks -----------------------------------------------------------------------------------


def _route_safely(team_id: int) -> None:
    # Routing must never break the change that triggered it; the scheduler retries within 30 s.
    try:
        assign_next(team_id=team_id)
    except Exception:
        logger.exception("auto-assignment failed for team %s", team_id)


@receiver(signals.conversation_queued, dispatch_uid="assignment-conversation-queued")
def on_conversation_queued(sender: Any, conversation_id: int, **kwargs: Any) -> None:
    if "team_id" in kwargs:  # receive_message says which team: no query
        team_id = kwargs["team_id"]
    else:
        team_id = Conversation.objects.filter(pk=conversation_id).values_list("team_id", flat=True).first()
    if team_id is not None:
        _route_safely(team_id)


@receiver(signals.capacity_freed, dispatch_uid="assignment-capacity-freed")
def on_capacity_freed(sender: Any, operator_id: int, **kwargs: Any) -> None:
    team_ids = kwargs.get("team_ids") or Operator.teams.through.objects.filter(operator_id=operator_id).values_list(
        "team_id", flat=True
    )
    for team_id in sorted(set(team_ids)):
        _route_safely(team_id)
