"""Registration hooks for the apps above the core (the manager's tools in ``desk/``).

The core never imports those apps; they register here in their ``AppConfig.ready()``, as connectors
register into :mod:`inbox.transport`. Three hooks:

- **list filters**: a query-string parameter of the inbox list (``?label=3``), its form field, the
  options the list's filter bar offers an operator, and how it narrows the conversations;
- **row badges**: HTML after a conversation's badges in the inbox list (one call per row: it must
  cost no query per row);
- **thread sections**: HTML in the thread's header (rendered by the thread view and again for live
  updates over the websocket, so it takes the conversation and nothing of the request).

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

from inbox.models import Conversation, Operator


@dataclass(frozen=True)
class ListFilter:
    """One filter of the inbox list; ``param`` is its name in the query string."""

    param: str
    label: StrOrPromise
    any_label: StrOrPromise
    field: Callable[[], forms.Field]
    options: Callable[[Operator], list[tuple[Any, str]]]
    apply: Callable[[QuerySet[Conversation], Any], QuerySet[Conversation]]


LIST_FILTERS: dict[str, ListFilter] = {}
ROW_BADGES: list[Callable[[Conversation], SafeString]] = []
THREAD_SECTIONS: list[Callable[[Conversation], SafeString]] = []


def register_list_filter(list_filter: ListFilter) -> None:
    if list_filter.param in {"tab", "team", "channel", "status", "cursor"}:
        raise ValueError(f"{list_filter.param!r} is the inbox's own parameter")
    LIST_FILTERS[list_filter.param] = list_filter


def register_row_badges(render: Callable[[Conversation], SafeString]) -> None:
    if render not in ROW_BADGES:
        ROW_BADGES.append(render)


def register_thread_section(render: Callable[[Conversation], SafeString]) -> None:
    if render not in THREAD_SECTIONS:
        THREAD_SECTIONS.append(render)
