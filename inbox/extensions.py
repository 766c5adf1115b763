"""Registration hooks for the apps above the core (the manager's tools in ``desk/``).

The core never imports those apps; they register here in their ``AppConfig.ready()``, as connectors
register into :mod:`inbox.transport`. The hooks:

- **list filters**: a query-string parameter of the inbox list (``?label=3``), its form field, the
  options the list's filter bar offers an operator, and how it narrows the conversations;
- **row badges**: HTML after a conversation's badges in the inbox list (one call per row: it must
  cost no query per row);
- **thread sections**: HTML in the thread's header (rendered by the thread view and again for live
  updates over the websocket, so it takes the conversation and nothing of the request);
- **reply guards**: a rule that may refuse an operator's reply (a team that lets only the assignee
  reply): given the conversation and the operator, the reason in words, or "" to allow.
  ``inbox.services.outbound.reply`` asks every guard before it stores anything;
- **row relations**: a one-to-one relation of ``Conversation`` an app's row badges read (``sla``),
  joined into the inbox list's one query so that the badges cost no query per row;
- **list orders**: another order of the inbox list than newest activity first (``?sort=due``):
  a date field, ascending, on which the list pages by keyset as it does by activity; the
  conversations without a value for it are left out of that view;
- **alerts**: a kind of desktop notification an app sends an operator about a conversation
  (``inbox.realtime.publish.conversation_alert``), with the function that words its title (called
  in the operator's language).

- **inbound holds**: a customer message that answers something of ours (a satisfaction survey's
  score, its comment) rather than asking for help: given the conversation (locked) and the stored
  message, inside ``inbox.services.inbound.receive_message``'s transaction, a hold returns a short
  name for what it kept the message as (stored in ``Message.metadata["held"]``), or "" to let it
  be an ordinary message. A held message stays in the thread but does not reopen a resolved
  conversation, does not make it wait for an answer and does not wake the bot. A hold may write
  (in that transaction) and must cost no query for an ordinary message to an open conversation.

With nothing registered the inbox is what it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils.safestring import SafeString
from django_stubs_ext import StrOrPromise

from inbox.models import Conversation, Message, Operator


@dataclass(frozen=True)
class ListFilter:
    """One filter of the inbox list; ``param`` is its name in the query string."""

    param: str
    label: StrOrPromise
    any_label: StrOrPromise
    field: Callable[[], forms.Field]
    options: Callable[[Operator], list[tuple[Any, str]]]
    apply: Callable[[QuerySet[Conversation], Any], QuerySet[Conversation]]


@dataclass(frozen=True)
class ListOrder:
    """An order of the inbox list (``?sort=<key>``): ``field`` is a date path, read ascending, then id."""

    key: str
    label: StrOrPromise
    field: str


LIST_FILTERS: dict[str, ListFilter] = {}
LIST_ORDERS: dict[str, ListOrder] = {}
ROW_BADGES: list[Callable[[Conversation], SafeString]] = []
THREAD_SECTIONS: list[Callable[[Conversation], SafeString]] = []
REPLY_GUARDS: list[Callable[[Conversation, Operator], str]] = []
ROW_RELATED: list[str] = []
ALERTS: dict[str, Callable[[Conversation], StrOrPromise]] = {}

INBOUND_HOLDS: list[Callable[[Conversation, Message], str]] = []


def register_list_filter(list_filter: ListFilter) -> None:
    if list_filter.param in {"tab", "team", "channel", "status", "cursor", "sort"}:
        raise ValueError(f"{list_filter.param!r} is the inbox's own parameter")
    LIST_FILTERS[list_filter.param] = list_filter


def register_row_badges(render: Callable[[Conversation], SafeString]) -> None:
    if render not in ROW_BADGES:
        ROW_BADGES.append(render)


def register_thread_section(render: Callable[[Conversation], SafeString]) -> None:
    if render not in THREAD_SECTIONS:
        THREAD_SECTIONS.append(render)


def register_reply_guard(guard: Callable[[Conversation, Operator], str]) -> None:
    if guard not in REPLY_GUARDS:
        REPLY_GUARDS.append(guard)


def register_list_order(order: ListOrder) -> None:
    LIST_ORDERS[order.key] = order


def register_row_related(relation: str) -> None:
    if relation not in ROW_RELATED:
        ROW_RELATED.append(relation)


def register_alert(kind: str, title: Callable[[Conversation], StrOrPromise]) -> None:
    ALERTS[kind] = title


def reply_refusal_for(conversation: Conversation, operator: Operator) -> str:
    """Why the registered guards refuse ``operator``'s reply in the conversation ('' when none does)."""
    for guard in REPLY_GUARDS:
        refusal = guard(conversation, operator)
        if refusal:
            return refusal
    return ""


def register_inbound_hold(hold: Callable[[Conversation, Message], str]) -> None:
    if hold not in INBOUND_HOLDS:
        INBOUND_HOLDS.append(hold)


def inbound_hold_for(conversation: Conversation, message: Message) -> str:
    """What a registered hold kept a customer's message as ('' when it is an ordinary message)."""
    for hold in INBOUND_HOLDS:
        held = hold(conversation, message)
        if held:
            return held
    return ""
