"""Reads for the operator's inbox: lists, counts, threads and the customer panel.

Every selector takes the operator first and returns only what that operator may see (their teams'
conversations; everything for staff). Each costs a fixed number of queries whatever the size of the
data, and lists page by keyset (newest activity first, ``(last_message_at, id)``), never by OFFSET.
The benchmark in ``bench/`` calls these functions: keep their signatures stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from django.db.models import Case, Count, F, Prefetch, Q, QuerySet, When, prefetch_related_objects
from django.db.models.fields.json import KeyTransform

from customers.models import Customer, CustomerNote, Identity
from inbox import extensions, visibility
from inbox.models import Attachment, Conversation, Message, Operator
from inbox.selectors.cursors import encode_cursor, later_than, older_than

Tab = Literal["mine", "unassigned", "bot", "all"]
TABS: tuple[Tab, ...] = ("mine", "unassigned", "bot", "all")


@dataclass(frozen=True)
class Page:
    """One page of a keyset-paginated list. ``next_cursor`` is None on the last page."""

    items: list[Any]
    next_cursor: str | None


@dataclass(frozen=True)
class Thread:
    """A customer's one timeline, oldest first, as seen from one of their conversations.

    ``messages`` holds at most ``limit`` messages, the newest ones before ``before``;
    ``older_cursor`` asks for the page before them (None when there is none).
    """

    conversation: Conversation
    messages: list[Message]
    older_cursor: str | None


@dataclass(frozen=True)
class CustomerPanel:
    customer: Customer
    identities: list[Any]
    conversations: list[Conversation]
    notes: list[CustomerNote]
    extra: dict[str, Any] = field(default_factory=dict)
    # The listed conversations the operator may open (the others are another team's).
    openable: frozenset[int] = frozenset()


# -- the inbox list ------------------------------------------------------------------------------


def visible_conversations(operator: Operator) -> QuerySet[Conversation]:
    """Conversations the operator may see: their teams' (all of them for staff)."""
    return Conversation.objects.visible_to(operator)


def tab_filter(tab: Tab, operator: Operator) -> Q:
    """The condition that puts a conversation in a tab.

    - ``mine``: assigned to the operator and not resolved;
    - ``unassigned``: handled by humans, nobody assigned, open (not snoozed or resolved);
    - ``bot``: handled by the bot and not resolved;
    - ``all``: everything the operator may see.
    """
    # ``status IN (open, snoozed)`` rather than ``!= resolved``: an equality range the indexes use.
    active = Q(status__in=[Conversation.Status.OPEN, Conversation.Status.SNOOZED])
    if tab == "mine":
        return Q(assignee=operator) & active
    if tab == "unassigned":
        return Q(handler=Conversation.Handler.HUMAN, assignee__isnull=True, status=Conversation.Status.OPEN)
    if tab == "bot":
        return Q(handler=Conversation.Handler.BOT) & active
    if tab == "all":
        return Q()
    raise ValueError(f"unknown tab {tab!r}")


def _filtered(
    operator: Operator,
    *,
    team_id: int | None,
    channel_id: int | None,
    status: str | None,
    attribute: tuple[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> QuerySet[Conversation]:
    conversations = visible_conversations(operator)
    if attribute is not None:
        # The customer's attribute equals the value as stored (typed: 12, not "12"); a JSON key
        # lookup, so it works the same on PostgreSQL and SQLite. Not indexed: it narrows the other filters.
        key, value = attribute
        conversations = conversations.alias(attribute_value=KeyTransform(key, "customer__attributes")).filter(
            attribute_value=value
        )
    for param, value in (extra or {}).items():
        conversations = extensions.LIST_FILTERS[param].apply(conversations, value)
    if team_id is not None:
        conversations = conversations.filter(team_id=team_id)
    if channel_id is not None:
        conversations = conversations.filter(last_channel_id=channel_id)
    if status:
        conversations = conversations.filter(status=status)
    return conversations


# What a page of the inbox shows of each conversation besides its own row.
INBOX_RELATED = ("customer", "assignee", "team", "last_channel")


def inbox_page(
    *,
    operator: Operator,
    tab: Tab = "all",
    team_id: int | None = None,
    channel_id: int | None = None,
    status: str | None = None,
    attribute: tuple[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    cursor: str | None = None,
    limit: int = 25,
    related: tuple[str, ...] = INBOX_RELATED,
    only: tuple[str, ...] = (),
    order: str | None = None,
) -> Page:
    """One page of the operator's inbox, newest activity first.

    ``items`` are conversations with ``related`` loaded (by default ``customer``, ``assignee``,
    ``team`` and ``last_channel``, what the inbox shows; the API, which shows ids, asks for the
    customer alone: each joined row is a model built and its JSON fields decoded; ``only``, when
    given, names the fields loaded, as ``QuerySet.only``). Pass ``next_cursor`` back as ``cursor``
    for the following page. ``extra`` holds the values of the filters registered in
    :mod:`inbox.extensions`, by parameter. ``order`` names an order registered in
    :mod:`inbox.extensions` (None: newest activity first). Costs one query. Raises
    :class:`InvalidCursor` for a cursor this module did not make and ``ValueError`` for an unknown
    tab.
    """
    matching = _filtered(
        operator, team_id=team_id, channel_id=channel_id, status=status, attribute=attribute, extra=extra
    ).filter(tab_filter(tab, operator))
    list_order = extensions.LIST_ORDERS.get(order) if order else None
    if list_order is not None:
        return _ordered_page(matching, list_order.field, cursor=cursor, limit=limit, related=related)
    ordering = ("-last_message_at", "-pk")
    page_ids = matching.filter(older_than(cursor, "last_message_at")).order_by(*ordering).values("pk")[: limit + 1]
    # Pick the page first, then join what the rows show: the joins then touch ``limit`` rows, not
    # every row of the tab (one query either way; the database runs the subquery first).
    if related == INBOX_RELATED:  # what the inbox's rows show, the apps' badges included
        related = (*related, *extensions.ROW_RELATED)
    conversations = Conversation.objects.filter(pk__in=page_ids).select_related(*related).order_by(*ordering)
    if only:
        conversations = conversations.only(*only)
    items = list(conversations)
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor(last.last_message_at, last.pk)
    return Page(items=items, next_cursor=next_cursor)


def _ordered_page(
    matching: QuerySet[Conversation], field: str, *, cursor: str | None, limit: int, related: tuple[str, ...]
) -> Page:
    """A page in an app's order (ascending ``field``, then id), keyset-paginated on that field."""
    if related == INBOX_RELATED:
        related = (*related, *extensions.ROW_RELATED)
    ordering = (field, "pk")
    page_ids = (
        matching.filter(**{f"{field}__isnull": False})
        .filter(later_than(cursor, field))
        .order_by(*ordering)
        .values("pk")[: limit + 1]
    )
    conversations = (
        Conversation.objects.filter(pk__in=page_ids)
        .select_related(*related)
        .annotate(order_key=F(field))
        .order_by(*ordering)
    )
    items = list(conversations)
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor(last.order_key, last.pk)  # type: ignore[attr-defined]  # annotated above
    return Page(items=items, next_cursor=next_cursor)


def inbox_counts(
    *,
    operator: Operator,
    team_id: int | None = None,
    channel_id: int | None = None,
    attribute: tuple[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """How much work each tab holds under the same filters: ``{"mine": 3, ...}``. One query.

    Counts are of conversations still to handle (open or snoozed): for ``mine``, ``unassigned``
    and ``bot`` that is the whole tab; for ``all`` it leaves out the resolved history, which only
    grows (and which would make this query read every row the operator has ever seen). ``extra``
    holds the values of the filters registered in :mod:`inbox.extensions` (a label, an SLA state),
    as for :func:`inbox_page`: the tabs count what the list shows.
    """
    active = _filtered(
        operator, team_id=team_id, channel_id=channel_id, status=None, attribute=attribute, extra=extra
    ).filter(status__in=[Conversation.Status.OPEN, Conversation.Status.SNOOZED])
    # Counting a column of the partial index (not the id) lets PostgreSQL answer from the index alone.
    return active.aggregate(**{tab: Count("status", filter=tab_filter(tab, operator)) for tab in TABS})


# -- the thread ----------------------------------------------------------------------------------


def conversation_for(*, operator: Operator, conversation_id: int) -> Conversation:
    """The conversation if the operator may see it; ``Conversation.DoesNotExist`` otherwise."""
    return (
        visible_conversations(operator)
        .select_related("customer", "assignee", "team", "last_channel")
        .get(pk=conversation_id)
    )


def thread_page(
    *,
    operator: Operator,
    conversation_id: int,
    before: str | None = None,
    limit: int = 50,
    conversation: Conversation | None = None,
) -> Thread:
    """The customer's whole timeline (every conversation, every channel), newest ``limit`` first.

    Only what the operator may read of the customer's conversations of other teams is in it (see
    :mod:`inbox.visibility`). Messages come oldest first with ``channel``, ``author``,
    ``conversation.team`` and ``attachments`` loaded. Raises ``Conversation.DoesNotExist`` when the
    operator may not see the conversation and :class:`InvalidCursor` for a bad ``before``. Costs
    three queries, two when the caller passes the ``conversation`` it got from
    :func:`conversation_for` (already checked).
    """
    if conversation is None or conversation.pk != conversation_id:
        conversation = conversation_for(operator=operator, conversation_id=conversation_id)
    timeline = Message.objects.filter(customer_id=conversation.customer_id)
    messages = list(
        visibility.readable_messages(operator, timeline, customer_known=True)
        .filter(older_than(before, "created_at"))
        .select_related("channel", "author", "conversation__team")
        .prefetch_related("attachments")
        .order_by("-created_at", "-pk")[: limit + 1]
    )
    older_cursor = None
    if len(messages) > limit:
        messages = messages[:limit]
        oldest = messages[-1]
        older_cursor = encode_cursor(oldest.created_at, oldest.pk)
    messages.reverse()
    return Thread(conversation=conversation, messages=messages, older_cursor=older_cursor)


def message_for(*, operator: Operator, message_id: int) -> Message:
    """A message of a conversation the operator may see; ``Message.DoesNotExist`` otherwise."""
    return (
        Message.objects.filter(conversation__in=visible_conversations(operator))
        .select_related("conversation", "conversation__customer", "channel", "author")
        .get(pk=message_id)
    )


def readable_message_for(*, operator: Operator, message_id: int) -> Message:
    """A message the operator may read in a customer's thread (:mod:`inbox.visibility`), which
    may be another team's customer message or reply; ``Message.DoesNotExist`` otherwise. For
    reading only: to act on a message, use :func:`message_for`."""
    return (
        visibility.readable_messages(operator)
        .select_related("conversation", "conversation__customer", "channel", "author")
        .get(pk=message_id)
    )


def attachment_for(*, operator: Operator, attachment_id: int) -> Attachment:
    """An attachment of a message the operator may read (:mod:`inbox.visibility`); ``DoesNotExist`` otherwise."""
    return Attachment.objects.filter(message__in=visibility.readable_messages(operator)).get(pk=attachment_id)


def customer_panel(
    *,
    operator: visibility.Reader,
    customer_id: int,
    conversations: int = 10,
    notes: int = 5,
    customer: Customer | None = None,
) -> CustomerPanel:
    """The compact profile beside a thread: identities, recent conversations, recent notes.

    The operator reaches it only through a conversation they may see: the caller checks that.
    Conversations of other teams are listed as :func:`inbox.visibility.listed_conversations` says.
    Costs four queries, three when the caller passes the ``customer`` it has loaded already.
    """
    identities = Prefetch("identities", queryset=Identity.objects.order_by("kind", "value"))
    if customer is not None and customer.pk == customer_id:
        prefetch_related_objects([customer], identities)
    else:
        customer = Customer.objects.prefetch_related(identities).get(pk=customer_id)
    listed = visibility.listed_conversations(operator, customer.conversations.all())
    recent = list(
        listed.select_related("last_channel", "assignee", "team").order_by("-last_message_at", "-pk")[:conversations]
    )
    recent_notes = list(customer.notes.select_related("author").order_by("-created_at")[:notes])
    return CustomerPanel(
        customer=customer,
        identities=list(customer.identities.all()),
        conversations=recent,
        notes=recent_notes,
        openable=frozenset(c.pk for c in recent if visibility.works_on(operator, c.team_id)),
    )


def team_presence(*, operator: Operator, limit: int = 50) -> list[Operator]:
    """The operator's teammates (every operator for staff) with their presence, online first. One query."""
    operators = Operator.objects.filter(is_active=True)
    if not operator.is_staff:
        operators = operators.filter(teams__in=operator.teams.all()).distinct()
    order = Case(
        When(presence=Operator.Presence.ONLINE, then=0), When(presence=Operator.Presence.AWAY, then=1), default=2
    )
    return list(operators.order_by(order, "display_name", "username")[:limit])


def replies_since(*, conversation: Conversation, since: datetime, operator: Operator) -> list[Message]:
    """Replies to the customer that someone other than ``operator`` (a teammate, the bot) wrote in
    the conversation after ``since``: collision control asks before sending on top of them."""
    return list(
        Message.objects.filter(
            conversation=conversation,
            kind=Message.Kind.MESSAGE,
            direction=Message.Direction.OUTBOUND,
            created_at__gt=since,
        )
        .exclude(status__in=Message.NOT_SENT)
        .exclude(author=operator)
        .select_related("author")
        .order_by("created_at", "pk")[:5]
    )
