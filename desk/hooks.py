"""What the manager's tools add to the inbox, registered into :mod:`inbox.extensions` when the app
is ready: the label filter of the list, label badges on its rows and the labels of a thread."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from common.db import MAX_ID
from desk import selectors
from desk.models import Macro
from inbox import extensions
from inbox.models import Conversation, Operator


def label_field() -> forms.Field:
    message = _("No such label.")
    return forms.IntegerField(
        label=_("Label"),
        required=False,
        min_value=1,
        max_value=MAX_ID,
        error_messages={"invalid": message, "min_value": message, "max_value": message},
    )


def label_options(operator: Operator) -> list[tuple[Any, str]]:
    return [(label.pk, label.name) for label in selectors.all_labels()]


def with_label(conversations: QuerySet[Conversation], label_id: Any) -> QuerySet[Conversation]:
    # A semi-join, not a join: a conversation shows once, and the list's keyset order stays.
    return conversations.filter(pk__in=selectors.conversations_with_label(int(label_id)))


def row_badges(conversation: Conversation) -> SafeString:
    if not conversation.labels:
        return mark_safe("")
    labels = [(name, selectors.colour_of(name)) for name in conversation.labels]
    return mark_safe(render_to_string("desk/partials/row_labels.html", {"labels": labels}))  # noqa: S308 - an escaped template


def thread_labels(conversation: Conversation) -> SafeString:
    context = {
        "conversation": conversation,
        "labels": selectors.conversation_labels(conversation),
        "all_labels": selectors.all_labels(),
    }
    return mark_safe(render_to_string("desk/partials/thread_labels.html", context))  # noqa: S308 - an escaped template


def thread_macros(conversation: Conversation) -> SafeString:
    macros = list(Macro.objects.for_conversation(conversation))
    if not macros:
        return mark_safe("")
    context = {"conversation": conversation, "macros": macros}
    return mark_safe(render_to_string("desk/partials/thread_macros.html", context))  # noqa: S308 - an escaped template


extensions.register_list_filter(
    extensions.ListFilter(
        param="label",
        label=_("Label"),
        any_label=_("Any label"),
        field=label_field,
        options=label_options,
        apply=with_label,
    )
)
extensions.register_row_badges(row_badges)
extensions.register_thread_section(thread_labels)
extensions.register_thread_section(thread_macros)
