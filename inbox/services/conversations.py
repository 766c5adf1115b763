"""The state of conversations: assignment, status, priority, snoozing, presence and opt-outs.

Every change to a conversation goes through a service. Each one checks permission and state, writes
in one transaction, saves through :func:`touch` (which bumps the conversation's version) and defers
side effects (tasks, broadcasts, hooks) with ``transaction.on_commit`` so nobody ever sees or acts on
a rolled-back row. The way in (:mod:`inbox.services.inbound`) and the way out
(:mod:`inbox.services.outbound`) are built on the helpers here.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from common.events import send_on_commit
from customers.models import Customer
from inbox import signals
from inbox.models import Channel, Conversation, Operator, OptOut
from inbox.realtime import publish
from inbox.services import activity


class ReplyRefused(Exception):
    """A reply or a change cannot be made as asked; ``reason`` says why, for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def preview(text: str) -> str:
    """The one-line summary of a message that the inbox list shows."""
    return " ".join(text.split())[:160]


def can_see(operator: Operator, conversation: Conversation) -> bool:
    if operator.is_staff:
        return True
    return conversation.team_id in operator.team_ids


def require_access(by: Operator | None, conversation: Conversation) -> None:
    """Raise ``PermissionDenied`` unless ``by`` (None: the system) may act on the conversation."""
    if by is not None and not can_see(by, conversation):
        raise PermissionDenied(_("This conversation belongs to another team."))


def touch(conversation: Conversation, *fields: str) -> None:
    """Save ``fields`` and bump the version in one ``UPDATE … RETURNING``; broadcast on commit."""
    quote = connection.ops.quote_name
    by_name = {field.name: field for field in Conversation._meta.concrete_fields}
    model_fields = [by_name[name] for name in dict.fromkeys(fields) if name != "version"]
    assignments = [f"{quote(str(f.column))} = %s" for f in model_fields] + [
        f"{quote('version')} = {quote('version')} + 1"
    ]
    values = [f.get_db_prep_save(f.pre_save(conversation, add=False), connection) for f in model_fields]
    # Names come from the model's own metadata, values are parameters.
    sql = (
        f"UPDATE {quote(Conversation._meta.db_table)} SET {', '.join(assignments)} "  # noqa: S608
        f"WHERE {quote('id')} = %s RETURNING {quote('version')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, conversation.pk])
        row = cursor.fetchone()
    if row is None:
        raise Conversation.DoesNotExist(f"conversation {conversation.pk} is gone")
    conversation.version = row[0]
    transaction.on_commit(partial(publish.conversation_changed, conversation.pk))


def assign_conversation(*, conversation: Conversation, operator: Operator, by: Operator | None) -> Conversation:
    require_access(by, conversation)
    if not can_see(operator, conversation):
        raise PermissionDenied(_("%(operator)s is not in this conversation's team.") % {"operator": operator})
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.assignee_id == operator.pk:
            return conversation
        previous = conversation.assignee
        conversation.assignee = operator
        conversation.handler = Conversation.Handler.HUMAN
        touch(conversation, "assignee", "handler")
        activity.record_activity(
            conversation=conversation, action="assigned", by=by, data={"to": operator.pk, "to_name": str(operator)}
        )
        send_on_commit(
            signals.conversation_assigned,
            conversation_id=conversation.pk,
            assignee_id=operator.pk,
            previous_id=previous.pk if previous else None,
        )
        if by is None or by.pk != operator.pk:  # routing or a teammate: the operator may be elsewhere
            transaction.on_commit(partial(publish.conversation_assigned, conversation.pk, operator.pk))
        if previous is not None:
            transaction.on_commit(lambda: signals.capacity_freed.send(sender=Operator, operator_id=previous.pk))
    return conversation


def unassign_conversation(*, conversation: Conversation, by: Operator | None, reason: str = "") -> Conversation:
    require_access(by, conversation)
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        previous = conversation.assignee
        if previous is None:
            return conversation
        conversation.assignee = None
        touch(conversation, "assignee")
        activity.record_activity(
            conversation=conversation,
            action="unassigned",
            by=by,
            data={"from": previous.pk, "from_name": str(previous), **({"reason": reason} if reason else {})},
        )
        send_on_commit(
            signals.conversation_assigned, conversation_id=conversation.pk, assignee_id=None, previous_id=previous.pk
        )
        transaction.on_commit(lambda: signals.capacity_freed.send(sender=Operator, operator_id=previous.pk))
        transaction.on_commit(
            lambda: signals.conversation_queued.send(sender=Conversation, conversation_id=conversation.pk)
        )
    return conversation


def resolve_conversation(*, conversation: Conversation, by: Operator | None) -> Conversation:
    require_access(by, conversation)
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.status == Conversation.Status.RESOLVED:
            return conversation
        conversation.status = Conversation.Status.RESOLVED
        conversation.resolved_at = timezone.now()
        conversation.snoozed_until = None
        conversation.waiting_since = None
        touch(conversation, "status", "resolved_at", "snoozed_until", "waiting_since")
        activity.record_activity(conversation=conversation, action="resolved", by=by)
        send_on_commit(signals.conversation_resolved, conversation_id=conversation.pk)
        if conversation.assignee_id:
            assignee_id = conversation.assignee_id
            transaction.on_commit(lambda: signals.capacity_freed.send(sender=Operator, operator_id=assignee_id))
    return conversation


def reopen_conversation(*, conversation: Conversation, by: Operator | None) -> Conversation:
    require_access(by, conversation)
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.status == Conversation.Status.OPEN:
            return conversation
        if (
            conversation.status == Conversation.Status.RESOLVED
            and Conversation.objects.filter(customer_id=conversation.customer_id).open().exists()
        ):
            raise ReplyRefused(_("This customer already has an open conversation."))
        conversation.status = Conversation.Status.OPEN
        conversation.resolved_at = None
        conversation.snoozed_until = None
        touch(conversation, "status", "resolved_at", "snoozed_until")
        activity.record_activity(conversation=conversation, action="reopened", by=by)
        send_on_commit(signals.conversation_reopened, conversation_id=conversation.pk)
    return conversation


def snooze_conversation(*, conversation: Conversation, until: datetime, by: Operator | None) -> Conversation:
    require_access(by, conversation)
    if until <= timezone.now():
        raise ReplyRefused(_("Snooze until a time in the future."))
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.status == Conversation.Status.RESOLVED:
            raise ReplyRefused(_("A resolved conversation cannot be snoozed."))
        conversation.status = Conversation.Status.SNOOZED
        conversation.snoozed_until = until
        touch(conversation, "status", "snoozed_until")
        activity.record_activity(conversation=conversation, action="snoozed", by=by, data={"until": until.isoformat()})
        send_on_commit(signals.conversation_snoozed, conversation_id=conversation.pk)
    return conversation


def wake_snoozed() -> list[int]:
    """Reopen conversations whose snooze has run out (the scheduler calls this)."""
    due = list(
        Conversation.objects.filter(status=Conversation.Status.SNOOZED, snoozed_until__lte=timezone.now()).values_list(
            "pk", flat=True
        )[:500]
    )
    for pk in due:
        with transaction.atomic():
            conversation = Conversation.objects.select_for_update().get(pk=pk)
            if conversation.status != Conversation.Status.SNOOZED:
                continue
            conversation.status = Conversation.Status.OPEN
            conversation.snoozed_until = None
            touch(conversation, "status", "snoozed_until")
            activity.record_activity(conversation=conversation, action="woke", by=None)
            send_on_commit(signals.conversation_reopened, conversation_id=conversation.pk)
    return due


def set_priority(*, conversation: Conversation, priority: int, by: Operator | None) -> Conversation:
    require_access(by, conversation)
    if priority not in Conversation.Priority.values:
        raise ReplyRefused(_("Unknown priority."))
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.priority == priority:
            return conversation
        conversation.priority = priority
        touch(conversation, "priority")
        activity.record_activity(
            conversation=conversation,
            action="priority",
            by=by,
            data={"priority": priority, "label": str(Conversation.Priority(priority).label)},
        )
    return conversation


def set_presence(*, operator: Operator, presence: str) -> Operator:
    if presence not in Operator.Presence.values:
        raise ValueError(f"unknown presence {presence!r}")
    with transaction.atomic():
        changed = (
            Operator.objects.filter(pk=operator.pk)
            .exclude(presence=presence)
            .update(presence=presence, presence_changed_at=timezone.now())
        )
        operator.presence = presence
        if changed:
            transaction.on_commit(partial(publish.presence_changed, operator.pk))
            if presence == Operator.Presence.ONLINE:
                transaction.on_commit(lambda: signals.capacity_freed.send(sender=Operator, operator_id=operator.pk))
    return operator


def opt_out(*, channel: Channel, customer: Customer, reason: str = "") -> None:
    with transaction.atomic():
        _, created = OptOut.objects.get_or_create(channel=channel, customer=customer, defaults={"reason": reason})
        if created:
            conversation = customer.conversations.open().first()
            if conversation is not None:
                activity.record_activity(
                    conversation=conversation, action="opted_out", by=None, data={"channel": channel.name}
                )


def opt_in(*, channel: Channel, customer: Customer) -> None:
    with transaction.atomic():
        deleted, _ = OptOut.objects.filter(channel=channel, customer=customer).delete()
        if deleted:
            conversation = customer.conversations.open().first()
            if conversation is not None:
                activity.record_activity(
                    conversation=conversation, action="opted_in", by=None, data={"channel": channel.name}
                )
