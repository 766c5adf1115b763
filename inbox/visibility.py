"""Who sees what of a customer: the one rule every read path applies (docs/security.md, "Who sees what").

An operator works the conversations of their teams; staff work all of them. A customer has one
thread across every conversation, and conversations of other teams show in it as follows:

- ``PARLEY_TEAM_ISOLATION=shared`` (the default): the customer's own messages and our replies
  (messages and calls, inbound or outbound) of another team's conversations show, marked with that
  team, so nobody asks the customer to repeat themselves; another team's private notes and
  activity entries never show. Only for a customer the operator already has (a conversation of
  theirs with that customer): nothing here makes a customer visible.
- ``PARLEY_TEAM_ISOLATION=strict``: nothing of another team's conversations shows.

The rule is written once, here, in two forms built from the same constants: a queryset filter
(:func:`readable_messages`, :func:`listed_conversations`) for database reads, and a predicate
(:func:`may_read`) for what is already in memory (a websocket event). The thread, "older
messages", attachments, the customer panel and profile, search and the websocket use them;
reports count only the operator's teams' conversations in both modes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet

from inbox.models import Conversation, Message

# What another team's conversation shows in a customer's thread, in shared mode.
SHARED_KINDS = (Message.Kind.MESSAGE, Message.Kind.CALL)
SHARED_DIRECTIONS = (Message.Direction.INBOUND, Message.Direction.OUTBOUND)


class Reader(Protocol):
    """Whoever reads: an :class:`~inbox.models.Operator` (or anything with the same two fields)."""

    @property
    def is_staff(self) -> bool: ...

    @property
    def team_ids(self) -> Sequence[int]: ...


@dataclass(frozen=True)
class Scope:
    """A reader's two fields, frozen: what a websocket keeps, and a key for fragments rendered for
    everyone who reads the same (``Scope(is_staff=False, team_ids=(1, 2))``)."""

    is_staff: bool
    team_ids: tuple[int, ...]

    @classmethod
    def of(cls, reader: Reader) -> Scope:
        return cls(is_staff=bool(reader.is_staff), team_ids=tuple(sorted(reader.team_ids)))


def strict() -> bool:
    """True when nothing of another team's conversations shows (``PARLEY_TEAM_ISOLATION=strict``)."""
    return bool(settings.PARLEY_TEAM_ISOLATION == "strict")


def works_on(reader: Reader, team_id: int | None) -> bool:
    """The reader works this team's conversations: staff, or a member (never a team-less one)."""
    return bool(reader.is_staff or (team_id is not None and team_id in reader.team_ids))


def is_shared_entry(*, kind: str, direction: str) -> bool:
    """A customer's message or our reply (or a call), as opposed to a private note or an activity entry."""
    return kind in SHARED_KINDS and direction in SHARED_DIRECTIONS


def may_read(reader: Reader, *, team_id: int | None, kind: str, direction: str) -> bool:
    """Whether the reader may read an entry of a conversation of ``team_id`` in the thread of a
    customer they already have (the in-memory twin of :func:`readable_messages`)."""
    if works_on(reader, team_id):
        return True
    return not strict() and is_shared_entry(kind=kind, direction=direction)


def _shared() -> Q:
    return Q(kind__in=SHARED_KINDS, direction__in=SHARED_DIRECTIONS)


def readable_messages(
    reader: Reader, messages: QuerySet[Message] | None = None, *, customer_known: bool = False
) -> QuerySet[Message]:
    """The messages (from ``messages``, every message by default) the reader may read.

    Pass ``customer_known=True`` when the caller has already checked that the reader has the
    customer (a thread opened through a conversation of theirs): the filter is then simpler.
    """
    messages = Message.objects.all() if messages is None else messages
    if reader.is_staff:
        return messages
    team_ids = list(reader.team_ids)
    own = Q(conversation__team_id__in=team_ids)
    if strict():
        return messages.filter(own)
    shared = _shared()
    if not customer_known:
        # Only for a customer the reader has: nothing here makes a customer visible.
        theirs = Exists(Conversation.objects.filter(customer_id=OuterRef("customer_id"), team_id__in=team_ids))
        shared = Q(shared, theirs)
    return messages.filter(own | shared)


def listed_conversations(reader: Reader, conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """A customer's conversations the reader's panel and profile list (all of them in shared mode,
    where another team's show with their team and without a link; their own only in strict mode)."""
    if reader.is_staff or not strict():
        return conversations
    return conversations.filter(team_id__in=list(reader.team_ids))
