"""What the manager's tools add to the inbox, registered into :mod:`inbox.extensions` when the app
is ready: the label filter of the list, label badges on its rows and the labels of a thread."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from common.db import MAX_ID
from desk import csat, rules, selectors, tasks
from desk.models import Macro, Rule, TeamSettings
from inbox import extensions, signals
from inbox.models import Conversation, Operator

logger = logging.getLogger(__name__)


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


def only_the_assignee_replies(conversation: Conversation, operator: Operator) -> str:
    """The team setting of collision control: in a team that lets only the assignee reply, a
    conversation assigned to someone else is theirs to answer (admins may always step in). Costs a
    query only for a conversation assigned to someone else."""
    if operator.is_staff or conversation.assignee_id in (None, operator.pk) or conversation.team_id is None:
        return ""
    if not TeamSettings.objects.filter(team_id=conversation.team_id, only_assignee_replies=True).exists():
        return ""
    return str(
        _("In this team only the assignee replies: %(name)s has this conversation. Take it first to answer.")
        % {"name": conversation.assignee}
    )


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
extensions.register_reply_guard(only_the_assignee_replies)


# -- automation rules: each domain event becomes a task in the worker ----------------------------------


# The events some enabled rule waits for, kept a few seconds per process: the way in must not pay a
# query per message for rules (tests/inbox/services/test_assignment.py counts them). A rule saved or
# deleted in this process is seen at once; in another process within RULE_EVENTS_SECONDS.
RULE_EVENTS_SECONDS = 5.0
_rule_events: tuple[float, frozenset[str]] | None = None


def events_with_rules() -> frozenset[str]:
    global _rule_events
    now = time.monotonic()
    if _rule_events is None or _rule_events[0] <= now:
        whens = frozenset(Rule.objects.filter(enabled=True).values_list("when", flat=True).distinct())
        _rule_events = (now + RULE_EVENTS_SECONDS, whens)
    return _rule_events[1]


def forget_rule_events(**kwargs: Any) -> None:
    global _rule_events
    _rule_events = None


post_save.connect(forget_rule_events, sender=Rule, dispatch_uid="desk.rules.forget_events_saved")
post_delete.connect(forget_rule_events, sender=Rule, dispatch_uid="desk.rules.forget_events_deleted")


def enqueue_rules(*, when: str, event_id: str, conversation_id: int, message_id: int | None = None) -> None:
    """Queue the rules for one event, after commit; nothing when no rule waits for it. Inside a
    rule's actions the depth goes up by one (:mod:`desk.rules`: no loops)."""
    if when not in events_with_rules():
        return
    try:
        tasks.run_rules.delay(when, event_id, conversation_id, message_id, rules.DEPTH.get())
    except Exception:  # a broker that is down loses this event's rules, never the writer's work
        logger.exception("could not enqueue the rules for %s", event_id)


def on_message_created(sender: Any, *, message_id: int, conversation_id: int, kind: str, **payload: Any) -> None:
    if kind == "inbound":
        enqueue_rules(
            when=Rule.When.INBOUND,
            event_id=f"message.inbound:{message_id}",
            conversation_id=conversation_id,
            message_id=message_id,
        )


def on_conversation_created(sender: Any, *, conversation_id: int, **payload: Any) -> None:
    enqueue_rules(
        when=Rule.When.CREATED, event_id=f"conversation.created:{conversation_id}", conversation_id=conversation_id
    )


def on_conversation_event(sender: Any, *, event: str, conversation_id: int, **payload: Any) -> None:
    """Assigned, handed off, resolved: these happen again to one conversation, so the delivery's id
    ends with a fresh token (made once here; the task's retries keep it)."""
    ids = ":".join(str(payload[key]) for key in ("assignee_id", "previous_id") if key in payload)
    enqueue_rules(
        when=event, event_id=f"{event}:{conversation_id}:{ids}:{uuid.uuid4().hex}", conversation_id=conversation_id
    )


signals.message_created.connect(on_message_created, dispatch_uid="desk.rules.message_created")
signals.conversation_created.connect(on_conversation_created, dispatch_uid="desk.rules.conversation_created")
for _event in (signals.conversation_assigned, signals.conversation_handed_off, signals.conversation_resolved):
    _event.connect(on_conversation_event, dispatch_uid=f"desk.rules.{_event.name}")


# -- satisfaction surveys: asked in the worker once a conversation is resolved ----------------------


def on_conversation_resolved(sender: Any, *, conversation_id: int, **payload: Any) -> None:
    """Queue the survey when the conversation's team asks for satisfaction (one indexed query)."""
    if not Conversation.objects.filter(pk=conversation_id, team__desk_settings__csat_enabled=True).exists():
        return
    try:
        tasks.ask_csat.delay(conversation_id)
    except Exception:  # a broker that is down loses this survey, never the writer's work
        logger.exception("could not enqueue the satisfaction survey of conversation %s", conversation_id)


signals.conversation_resolved.connect(on_conversation_resolved, dispatch_uid="desk.csat.resolved")
extensions.register_inbound_hold(csat.hold)
