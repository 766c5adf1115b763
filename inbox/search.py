"""Search every conversation's messages: "the conversation where someone mentioned order #1234".

A query is words and "quoted phrases"; every one must appear in a message (case-insensitive).
Customer messages, operator and bot replies, private notes and calls are searched; activity entries
are not. An operator finds only the conversations the inbox shows them (their teams'; all for staff).

PostgreSQL matches with full-text search (``simple`` configuration: no stemming, no stop words)
against the GIN index ``msg_text_search`` (migration 0005), so it matches whole words: "parcel"
does not find "parcels". A term with symbols in it (``#1234``, ``A-1001``, ``+15005550006``, an
email address) must also appear literally (``icontains``), and a term of symbols only, which
full-text search cannot match, is matched by ``icontains`` alone. SQLite matches every term with
``icontains`` (any part of a word; its case folding covers ASCII letters only).

Results come newest first, a page at a time by keyset on ``(created_at, id)``: one query a page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from inbox.models import Message, Operator
from inbox.selectors import InvalidCursor, encode_cursor, older_than

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
    conversation_id: int
    customer_name: str
    channel_name: str
    channel_medium: str
    # The text around the first match as (text, is_match) pieces: the template escapes each and
    # wraps the matches in <mark>; no HTML is built here.
    snippet: list[tuple[str, bool]]


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
    """Messages that contain every term of ``query``, in conversations ``operator`` may see.

    Raises :class:`InvalidQuery` for a query that cannot be searched and :class:`InvalidCursor`
    for a ``before`` this module did not make.
    """
    terms = parse_query(query)
    messages = _matching(_visible_messages(operator), terms).filter(older_than(before, "created_at"))
    rows = list(messages.order_by("-created_at", "-id")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    hits = [_hit(message, terms) for message in rows]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].pk) if more else None
    return ResultPage(hits=hits, next_cursor=next_cursor)


def _visible_messages(operator: Operator) -> QuerySet[Message]:
    """The searchable messages of the conversations the inbox shows the operator."""
    messages = Message.objects.filter(kind__in=SEARCHED_KINDS).select_related("customer", "channel")
    if operator.is_staff:
        return messages
    # The same rule as Conversation.objects.visible_to: the operator's teams, as literal ids.
    return messages.filter(conversation__team_id__in=operator.team_ids)


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


def _hit(message: Message, terms: list[Term]) -> Hit:
    channel = message.channel
    return Hit(
        message=message,
        conversation_id=message.conversation_id,
        customer_name=message.customer.display_name,
        channel_name=channel.name if channel else "",
        channel_medium=channel.medium if channel else "",
        snippet=snippet(message.text, terms),
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
