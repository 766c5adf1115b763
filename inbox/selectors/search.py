"""Search every conversation's messages: "the conversation where someone mentioned order #1234".

A query is words and "quoted phrases"; every one must appear in a message (case-insensitive).
Customer messages, operator and bot replies, private notes and calls are searched; activity entries
are not. An operator finds what the customer's thread shows them (:mod:`inbox.visibility`): the
conversations of their teams (all for staff) and, unless teams are strictly isolated, the customer
messages and replies of other teams' conversations with customers they have, marked with that team
and linked to the operator's own conversation with the customer.

PostgreSQL matches with full-text search (``simple`` configuration: no stemming, no stop words)
against the GIN index ``msg_text_search`` (migration 0005), so it matches whole words: "parcel"
does not find "parcels". A term with symbols in it (``#1234``, ``A-1001``, ``+15005550006``, an
email address) must also appear literally (``icontains``), and a term of symbols only, which
full-text search cannot match, is matched by ``icontains`` alone. SQLite matches every term with
``icontains`` (any part of a word; its case folding covers ASCII letters only).

Results come newest first, a page at a time by keyset on ``(created_at, id)``: one query a page,
and one more when hits of other teams' conversations need a conversation of the operator's to open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from inbox import visibility
from inbox.models import Conversation, Message, Operator
from inbox.selectors.cursors import InvalidCursor, encode_cursor, older_than

if TYPE_CHECKING:
    from django.contrib.postgres.search import SearchQuery

__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "Hit",
    "InvalidCursor",
    "InvalidQuery",
    "ResultPage",
    "Term",
    "parse_query",
    "search_messages",
]

MIN_LENGTH = 2
MAX_LENGTH = 100
MAX_TERMS = 10
SEARCHED_KINDS = (Message.Kind.MESSAGE, Message.Kind.NOTE, Message.Kind.CALL)
# The snippet: this many characters before the first match, and at most this many in all.
SNIPPET_BEFORE = 60
SNIPPET_LENGTH = 200

_TERM = re.compile(r'"([^"]*)"?|(\S+)')


class InvalidQuery(ValueError):
    """A query that cannot be searched; ``str()`` is a message for the operator."""


@dataclass(frozen=True)
class Term:
    """A word or a quoted phrase of the query, as the operator typed it."""

    text: str

    @property
    def is_phrase(self) -> bool:
        return " " in self.text

    @property
    def has_words(self) -> bool:
        """Full-text search can match it: it holds at least one letter or digit."""
        return any(char.isalnum() for char in self.text)

    @property
    def has_symbols(self) -> bool:
        """It holds characters other than letters, digits and spaces: ``#1234``, ``a@b.example``."""
        return any(not (char.isalnum() or char.isspace()) for char in self.text)


@dataclass(frozen=True)
class Hit:
    """One message that matches, with what the result list shows of it."""

    message: Message
    # The conversation the link opens: the message's own, or for another team's message the
    # operator's latest conversation with the customer (whose thread shows it).
    conversation_id: int
    customer_name: str
    channel_name: str
    channel_medium: str
    # The text around the first match as (text, is_match) pieces: the template escapes each and
    # wraps the matches in <mark>; no HTML is built here.
    snippet: list[tuple[str, bool]]
    # The team of another team's conversation ("" for the operator's own).
    other_team: str = ""


@dataclass(frozen=True)
class ResultPage:
    """One page of hits, newest first; ``next_cursor`` asks for the older ones (None on the last page)."""

    hits: list[Hit]
    next_cursor: str | None


def parse_query(query: str) -> list[Term]:
    """The query's words and "quoted phrases"; :class:`InvalidQuery` when it cannot be searched."""
    query = query.strip()
    if len(query) < MIN_LENGTH:
        raise InvalidQuery(_("Type at least %(min)d characters to search.") % {"min": MIN_LENGTH})
    if len(query) > MAX_LENGTH:
        raise InvalidQuery(_("Search for at most %(max)d characters.") % {"max": MAX_LENGTH})
    terms: list[Term] = []
    for match in _TERM.finditer(query):
        phrase, word = match.groups()
        text = " ".join((phrase if phrase is not None else word.strip('"')).split())
        if text and Term(text) not in terms:
            terms.append(Term(text))
    if not terms:
        raise InvalidQuery(_("Type a word or a phrase to search for."))
    if len(terms) > MAX_TERMS:
        raise InvalidQuery(_("Search for at most %(max)d words or phrases.") % {"max": MAX_TERMS})
    return terms


def search_messages(*, operator: Operator, query: str, before: str | None = None, limit: int = 30) -> ResultPage:
    """Messages that contain every term of ``query`` and that ``operator`` may read (:mod:`inbox.visibility`).

    Raises :class:`InvalidQuery` for a query that cannot be searched and :class:`InvalidCursor`
    for a ``before`` this module did not make.
    """
    terms = parse_query(query)
    messages = _matching(_visible_messages(operator), terms).filter(older_than(before, "created_at"))
    rows = list(messages.order_by("-created_at", "-id")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    # Another team's messages (shown by the shared rule) open in the operator's own conversation.
    foreign = {message.pk for message in rows if not visibility.works_on(operator, message.conversation.team_id)}
    customers = {message.customer_id for message in rows if message.pk in foreign}
    opens = _own_conversations(operator, customers) if customers else {}
    hits = [_hit(message, terms, opens if message.pk in foreign else None) for message in rows]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].pk) if more else None
    return ResultPage(hits=hits, next_cursor=next_cursor)


def _visible_messages(operator: Operator) -> QuerySet[Message]:
    """The searchable messages the operator may read (the rule of :mod:`inbox.visibility`)."""
    messages = Message.objects.filter(kind__in=SEARCHED_KINDS).select_related(
        "customer", "channel", "conversation__team"
    )
    return visibility.readable_messages(operator, messages)


def _own_conversations(operator: Operator, customer_ids: set[int]) -> dict[int, int]:
    """For each customer, the operator's conversation with them that was active last."""
    latest: dict[int, int] = {}
    for customer_id, pk in (
        Conversation.objects.visible_to(operator)
        .filter(customer_id__in=customer_ids)
        .order_by("-last_message_at", "-pk")
        .values_list("customer_id", "pk")
    ):
        latest.setdefault(customer_id, pk)
    return latest


def _matching(messages: QuerySet[Message], terms: list[Term]) -> QuerySet[Message]:
    if connection.vendor != "postgresql":
        return messages.filter(_icontains_all(terms))
    from django.contrib.postgres.search import SearchVector

    full_text = _full_text_query([term for term in terms if term.has_words])
    if full_text is not None:
        # The expression is exactly the index's (inbox.migrations.0005), so the planner can use it.
        messages = messages.alias(text_search=SearchVector("text", config="simple")).filter(text_search=full_text)
    # Full-text search reads "#1234" as 1234 and cannot match symbols alone: such terms must also
    # appear as typed.
    return messages.filter(_icontains_all([term for term in terms if term.has_symbols or not term.has_words]))


def _icontains_all(terms: list[Term]) -> Q:
    condition = Q()
    for term in terms:
        condition &= Q(text__icontains=term.text)
    return condition


def _full_text_query(terms: list[Term]) -> SearchQuery | None:
    if not terms:
        return None
    from django.contrib.postgres.search import SearchQuery

    # Each term quoted: a word is then never read as an operator ("or", "-word"), and a phrase's
    # words must come in order. Quotes inside a term were dropped by parse_query.
    websearch = " ".join(f'"{term.text}"' for term in terms)
    return SearchQuery(websearch, search_type="websearch", config="simple")


def _hit(message: Message, terms: list[Term], opens: dict[int, int] | None) -> Hit:
    """A hit; ``opens`` (customer id to the operator's conversation) is given for another team's message."""
    channel = message.channel
    team = message.conversation.team
    own = opens is None
    return Hit(
        message=message,
        conversation_id=message.conversation_id
        if opens is None
        else opens.get(message.customer_id, message.conversation_id),
        customer_name=message.customer.display_name,
        channel_name=channel.name if channel else "",
        channel_medium=channel.medium if channel else "",
        snippet=snippet(message.text, terms),
        other_team="" if own else (team.name if team else _("No team")),
    )


def snippet(text: str, terms: list[Term]) -> list[tuple[str, bool]]:
    """The text around the first match, as (text, is_match) pieces; the start of the text if no
    term appears literally (full-text search matched ``1234`` for ``#1234``, say)."""
    text = " ".join(text.split())
    needles = sorted({needle for term in terms for needle in _needles(term)}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(needle) for needle in needles), re.IGNORECASE) if needles else None
    first = pattern.search(text) if pattern else None
    start = max(first.start() - SNIPPET_BEFORE, 0) if first else 0
    end = min(start + SNIPPET_LENGTH, len(text))
    window = text[start:end]
    pieces: list[tuple[str, bool]] = []
    if start > 0:
        pieces.append(("…", False))
    position = 0
    for match in pattern.finditer(window) if pattern else ():
        if match.start() > position:
            pieces.append((window[position : match.start()], False))
        pieces.append((match.group(), True))
        position = match.end()
    if position < len(window):
        pieces.append((window[position:], False))
    if end < len(text):
        pieces.append(("…", False))
    return pieces


def _needles(term: Term) -> list[str]:
    """What to mark for a term: the term itself, and its words as full-text search read them."""
    return [term.text, *(part for part in re.split(r"[^\w]+", term.text) if len(part) >= MIN_LENGTH)]
