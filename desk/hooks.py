"""What the manager's tools add to the inbox, registered into :mod:`inbox.extensions` when the app
is ready: the label and SLA filters of the list, label and SLA badges on its rows, the labels,
macros and SLA clock of a thread, the SLA breach alert; and the receivers of the domain events
(automation rules, SLA clocks)."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from cachetools import TTLCache, cached
from celery import current_task
from django import forms
from django.db.models import Q, QuerySet
from django.db.models.signals import post_delete, post_save
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django_stubs_ext import StrOrPromise

from common.db import MAX_ID
from desk import csat, rules, selectors, services, sla, tasks
from desk.models import ConversationSla, Macro, Rule, SlaPolicy, TeamSettings
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


@cached(TTLCache(maxsize=1, ttl=RULE_EVENTS_SECONDS), lock=threading.Lock())
def events_with_rules() -> frozenset[str]:
    return frozenset(Rule.objects.filter(enabled=True).values_list("when", flat=True).distinct())


def forget_rule_events(**kwargs: Any) -> None:
    events_with_rules.cache_clear()


post_save.connect(forget_rule_events, sender=Rule, dispatch_uid="desk.rules.forget_events_saved")
post_delete.connect(forget_rule_events, sender=Rule, dispatch_uid="desk.rules.forget_events_deleted")


def enqueue_rules(*, when: str, event_id: str, conversation_id: int, message_id: int | None = None) -> None:
    """Run the rules for one event after commit, in the worker; nothing when no rule waits for it.

    An event caused in a web process (an operator's action) becomes a task. An event caused inside
    a worker's task (a customer message being processed, a rule's own action, the scheduler's
    sweeps) runs the rules right there, after the commit: a second task per message cost the
    worker more than the rules themselves (bench.rules), and it is no less safe — either way the
    rules of an event whose process dies right after the commit are lost, and either way a rule
    runs at most once (claims). If they fail here they are queued as a task, which retries.
    Inside a rule's actions the depth goes up by one (:mod:`desk.rules`: no loops)."""
    if when not in events_with_rules():
        return
    depth = rules.DEPTH.get()
    if _in_worker_task():
        try:
            rules.run_event(
                when=when, event_id=event_id, conversation_id=conversation_id, message_id=message_id, depth=depth
            )
            return
        except Exception:
            logger.exception("the rules for %s failed in place; queued to retry", event_id)
    try:
        tasks.run_rules.delay(when, event_id, conversation_id, message_id, depth)
    except Exception:  # a broker that is down loses this event's rules, never the writer's work
        logger.exception("could not enqueue the rules for %s", event_id)


def _in_worker_task() -> bool:
    """Whether this code runs inside a Celery task being executed by a worker (not eagerly)."""
    if not current_task:  # a proxy: false outside a task
        return False
    request = current_task.request
    return bool(request.id) and not request.is_eager


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


# -- SLA clocks ----------------------------------------------------------------------------------------


def _clock(conversation: Conversation) -> ConversationSla | None:
    """The conversation's clock: joined by the inbox list's query (``register_row_related``), one
    query otherwise."""
    try:
        return conversation.sla
    except ConversationSla.DoesNotExist:
        return None


def sla_row_badge(conversation: Conversation) -> SafeString:
    clock = _clock(conversation)
    if clock is None or clock.policy_id is None:
        return mark_safe("")
    now = timezone.now()
    level = sla.level(clock, now=now)
    if not level:
        return mark_safe("")
    context = {"level": level, "due": clock.next_due}
    return mark_safe(render_to_string("desk/partials/row_sla.html", context))  # noqa: S308 - an escaped template


def thread_sla(conversation: Conversation) -> SafeString:
    clock = ConversationSla.objects.select_related("policy").filter(conversation_id=conversation.pk).first()
    if clock is None or clock.policy is None:
        return mark_safe("")
    context = {"clock": clock, **selectors.sla_targets(clock, now=timezone.now())}
    return mark_safe(render_to_string("desk/partials/thread_sla.html", context))  # noqa: S308 - an escaped template


SLA_CHOICES = {"soon": _("SLA: due soon"), "breached": _("SLA: breached")}


def sla_field() -> forms.Field:
    return forms.ChoiceField(
        label=_("SLA"),
        required=False,
        choices=[("", _("Any SLA")), *SLA_CHOICES.items()],
        error_messages={"invalid_choice": _("Choose “due soon” or “breached”.")},
    )


def sla_options(operator: Operator) -> list[tuple[Any, str]]:
    return [(key, str(label)) for key, label in SLA_CHOICES.items()]


def with_sla(conversations: QuerySet[Conversation], value: Any) -> QuerySet[Conversation]:
    """Due soon: a running target turned amber and none is past due yet. Breached: a target is past
    due, or was missed and is still unanswered. A semi-join on the clocks' indexed columns."""
    now = timezone.now()
    missed = Q(next_due__lte=now)
    for target in sla.TARGETS:
        missed |= Q(**{f"{target}_breached_at__isnull": False, f"{target}_at__isnull": True})
    clocks = ConversationSla.objects.filter(policy__isnull=False)
    if value == "breached":
        clocks = clocks.filter(missed)
    else:
        clocks = clocks.filter(soon_at__lte=now, next_due__gt=now).exclude(missed)
    return conversations.filter(pk__in=clocks.values("conversation_id"))


def sla_alert_title(conversation: Conversation) -> StrOrPromise:
    return _("SLA target missed: %(customer)s") % {"customer": conversation.customer.display_name}


extensions.register_list_filter(
    extensions.ListFilter(
        param="sla", label=_("SLA"), any_label=_("Any SLA"), field=sla_field, options=sla_options, apply=with_sla
    )
)
extensions.register_list_order(extensions.ListOrder(key="due", label=_("SLA due first"), field="sla__next_due"))
extensions.register_row_related("sla")
extensions.register_row_badges(sla_row_badge)
extensions.register_thread_section(thread_sla)
extensions.register_alert("sla_breached", sla_alert_title)

for _event in (
    signals.message_created,
    signals.conversation_created,
    signals.conversation_handed_off,
    signals.conversation_resolved,
    signals.conversation_reopened,
    signals.conversation_snoozed,
):  # the assignee moves no clock
    _event.connect(services.on_conversation_event, dispatch_uid=f"desk.sla.{_event.name}")


def forget_policies(**kwargs: Any) -> None:
    services.forget_policies()


post_save.connect(forget_policies, sender=SlaPolicy, dispatch_uid="desk.sla.forget_policies_saved")
post_delete.connect(forget_policies, sender=SlaPolicy, dispatch_uid="desk.sla.forget_policies_deleted")

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
