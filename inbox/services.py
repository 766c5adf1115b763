"""The core's writers: every change to conversations and messages goes through these functions.

Each one checks permission and state, writes in one transaction, and defers side effects (tasks,
broadcasts, hooks) with ``transaction.on_commit`` so nobody ever sees or acts on a rolled-back row.
The way in (:mod:`inbox.inbound`) and the way out (:mod:`inbox.outbound`) have modules of their own
built on these; this module never imports them.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import record
from common import db
from common.html import sanitize_html
from customers.models import Customer
from customers.services import InvalidAddress, link_identity, normalise_address, resolve_customer
from inbox import files, realtime, signals
from inbox.models import Attachment, Channel, Conversation, Message, Operator, OptOut
from inbox.transport import InboundAttachment, InboundMessage, InvalidRequest, StatusUpdate, connector_for

logger = logging.getLogger(__name__)


class ReplyRefused(Exception):
    """A reply cannot go out as asked; ``reason`` says why, for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownMessage(Exception):
    """A status update names a message we do not know (yet): the event is retried."""


def _on_commit(func: Any, *args: Any) -> None:
    transaction.on_commit(lambda: func(*args))


def _preview(text: str) -> str:
    return " ".join(text.split())[:160]


def can_see(operator: Operator, conversation: Conversation) -> bool:
    if operator.is_staff:
        return True
    return conversation.team_id in operator.team_ids


def _require_access(by: Operator | None, conversation: Conversation) -> None:
    if by is not None and not can_see(by, conversation):
        raise PermissionDenied(_("This conversation belongs to another team."))


def _touch(conversation: Conversation, *fields: str) -> None:
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
    _on_commit(realtime.conversation_changed, conversation.pk)


# -- activity --------------------------------------------------------------------------------


def record_activity(
    *, conversation: Conversation, action: str, by: Operator | Any | None, data: dict[str, Any] | None = None
) -> Message:
    """An entry in the thread saying who changed what, and when."""
    message = Message.objects.create(
        conversation=conversation,
        customer_id=conversation.customer_id,
        kind=Message.Kind.ACTIVITY,
        direction=Message.Direction.INTERNAL,
        sender=Message.Sender.SYSTEM,
        author=by if isinstance(by, Operator) else None,
        text=action,
        metadata={"action": action, **(data or {})},
        created_at=timezone.now(),
    )
    _on_commit(realtime.message_created, message.pk)
    return message


# -- inbound ---------------------------------------------------------------------------------


class _Duplicate(Exception):
    """The provider message is stored already: undo what this delivery did so far."""


def receive_message(*, channel: Channel, inbound: InboundMessage) -> Message:
    """Append a customer's message to their one active conversation; returns the stored message.

    The same provider message twice, or two new messages racing for the same new customer, give one
    customer, one conversation and one message.

    A known customer with an open conversation costs one transaction of four statements: find and
    lock the conversation through the identity, insert the message (``ON CONFLICT DO NOTHING``: a
    duplicate rolls the transaction back), update the conversation (``RETURNING`` its version),
    commit. After commit, one callback runs the hooks (bot, routing...) and then sends ONE broadcast
    per conversation, carrying the message and whatever the hooks changed (an automatic assignment
    and its activity entry) — see :func:`inbox.realtime.batched`.
    """
    connector = connector_for(channel)
    kind = inbound.identity_kind or connector.identity_kind
    try:
        with realtime.batched(), transaction.atomic():
            conversation = None
            if not inbound.extra_identities:
                conversation = (
                    Conversation.objects.select_for_update(of=("self",))
                    .select_related("customer")
                    .filter(
                        customer__identities__kind=kind,
                        customer__identities__value=normalise_address(kind, inbound.address),
                    )
                    .open()
                    .first()
                )
            opened = False
            now = timezone.now()
            new_customer = False
            if conversation is None or (inbound.name and not conversation.customer.name):
                customer, identity = resolve_customer(kind=kind, value=inbound.address, name=inbound.name)
                # Made by this call (or by a racing one an instant ago: the one-active-conversation
                # constraint settles that below): it has no conversations to look for.
                new_customer = identity.created_at >= now
            else:
                customer = conversation.customer
            for extra_kind, value in inbound.extra_identities:
                try:
                    link_identity(customer=customer, kind=extra_kind, value=value, verified=True)
                except InvalidAddress:
                    logger.info("ignored an invalid extra identity %s on channel %s", extra_kind, channel.pk)
            preview = _preview(inbound.text or inbound.kind)
            if conversation is None:
                waiting = None if inbound.auto_reply else now
                conversation, opened = _active_conversation(
                    customer=customer,
                    channel=channel,
                    inbound=inbound,
                    new_customer=new_customer,
                    opening={
                        "last_message_at": now,
                        "last_message_preview": preview,
                        "last_inbound_at": waiting,
                        "waiting_since": waiting,
                    },
                )
            message = Message(
                conversation=conversation,
                customer=customer,
                channel=channel,
                kind=inbound.kind,
                direction=Message.Direction.INBOUND,
                sender=Message.Sender.CUSTOMER,
                text=inbound.text,
                html=sanitize_html(inbound.html) if inbound.html else "",
                address=normalise_address(kind, inbound.address),
                provider_id=inbound.provider_id,
                status=Message.Status.RECEIVED,
                metadata={
                    **inbound.metadata,
                    **({"auto_reply": True} if inbound.auto_reply else {}),
                    **({"content_digest": inbound.content_digest} if inbound.content_digest else {}),
                },
                created_at=now,
            )
            if not _insert_message(message):
                raise _Duplicate
            for attachment in inbound.attachments:
                _store_attachment(message, attachment)
            reopened = conversation.status != Conversation.Status.OPEN and not inbound.auto_reply
            if reopened:
                conversation.status = Conversation.Status.OPEN
                conversation.snoozed_until = None
                conversation.resolved_at = None
                record_activity(
                    conversation=conversation, action="reopened", by=None, data={"reason": "customer wrote"}
                )
            if not opened:  # a conversation opened here was inserted with all of this
                conversation.last_message_at = now
                conversation.last_channel = channel
                conversation.last_message_preview = preview
                if not inbound.auto_reply:
                    conversation.last_inbound_at = now
                    if conversation.waiting_since is None:
                        conversation.waiting_since = now
                _touch(
                    conversation,
                    "status",
                    "snoozed_until",
                    "resolved_at",
                    "last_message_at",
                    "last_channel",
                    "last_message_preview",
                    "last_inbound_at",
                    "waiting_since",
                )
            handler = conversation.handler
            queued = opened and handler == Conversation.Handler.HUMAN and conversation.assignee_id is None

            def after_commit() -> None:
                # Inside a realtime batch (this call's, or its own when an outer transaction
                # commits later): what the hooks change rides on the message's one broadcast.
                with realtime.batched():
                    realtime.message_created(message.pk)
                    realtime.conversation_changed(conversation.pk)
                    signals.message_received.send(
                        sender=Message,
                        message_id=message.pk,
                        conversation_id=conversation.pk,
                        auto_reply=inbound.auto_reply,
                        opened=opened,
                        handler=handler,
                        metadata=message.metadata,
                    )
                    if queued:
                        signals.conversation_queued.send(
                            sender=Conversation, conversation_id=conversation.pk, team_id=conversation.team_id
                        )

            transaction.on_commit(after_commit)
    except _Duplicate:
        stored = Message.objects.get(channel=channel, provider_id=inbound.provider_id)
        digest = inbound.content_digest
        if not digest or stored.metadata.get("content_digest", digest) == digest:
            logger.info(
                "channel %s: %s delivered again, kept once as message %s", channel.pk, inbound.provider_id, stored.pk
            )
            return stored
        # The same provider id with other content (a reused email Message-ID): another message,
        # under an id of its own that its own redelivery collapses on.
        variant = f"{inbound.provider_id[:200]}#{digest[:16]}"
        logger.warning(
            "channel %s: %s already names message %s with other content; stored as %s",
            channel.pk,
            inbound.provider_id,
            stored.pk,
            variant,
        )
        return receive_message(channel=channel, inbound=replace(inbound, provider_id=variant))
    return message


def _insert_message(message: Message) -> bool:
    """INSERT the message; False when its provider id is stored already (nothing is written).

    One statement instead of a lookup and a savepoint around the insert: ``ON CONFLICT DO NOTHING``
    on the partial unique index (channel, provider id), on PostgreSQL and SQLite alike. A concurrent
    delivery of the same message waits for the first to commit, then finds the conflict.
    """
    conflict = ""
    if message.provider_id:
        quote = connection.ops.quote_name
        conflict = db.on_conflict("channel_id", "provider_id", where=f"NOT ({quote('provider_id')} = '')")
    return db.insert(message, conflict=conflict)


def _active_conversation(
    *,
    customer: Customer,
    channel: Channel,
    inbound: InboundMessage,
    new_customer: bool = False,
    opening: dict[str, Any] | None = None,
) -> tuple[Conversation, bool]:
    """The customer's active conversation; else the one they replied to or resolved lately; else new.

    A new conversation is inserted with ``opening`` (more field values) in one statement, ``ON
    CONFLICT DO NOTHING`` on the one-active-per-customer constraint: when another process opened
    one a moment ago, that one is returned, locked. A ``new_customer`` has nothing to look for.
    """
    if not new_customer:
        active = Conversation.objects.select_for_update().filter(customer=customer).open().first()
        if active is not None:
            return active, False
        candidates = Conversation.objects.filter(customer=customer)
        earlier = None
        if inbound.auto_reply:
            # An automatic message (out-of-office, a bounce) joins the latest conversation as it is:
            # it never reopens resolved work, and opens one only for a customer who has none.
            earlier = candidates.order_by("-last_message_at").first()
        if earlier is None and inbound.conversation_token:
            token_id = _token_to_id(inbound.conversation_token)
            earlier = candidates.filter(pk=token_id).first() if token_id is not None else None
        if earlier is None and inbound.replies_to:
            earlier = candidates.filter(
                pk__in=Message.objects.filter(provider_id__in=inbound.replies_to, customer=customer).values(
                    "conversation_id"
                )
            ).first()
        if earlier is None:
            recent = timezone.now() - timedelta(days=settings.PARLEY_REOPEN_DAYS)
            earlier = candidates.filter(resolved_at__gte=recent).order_by("-resolved_at").first()
        if earlier is not None:
            return earlier, False
    initial: dict[str, Any] = {
        "customer": customer,
        "team": channel.team,
        "handler": Conversation.Handler.BOT if channel.bot_enabled else Conversation.Handler.HUMAN,
        "last_channel": channel,
        "last_message_at": timezone.now(),
        "subject": str(inbound.metadata.get("subject", ""))[:255],
        **(opening or {}),
    }
    conversation = Conversation(**initial)
    quote = connection.ops.quote_name
    if not db.insert(
        conversation, conflict=db.on_conflict("customer_id", where=f"NOT ({quote('status')} = 'resolved')")
    ):
        # Another process opened it a moment ago.
        return Conversation.objects.select_for_update().filter(customer=customer).open().get(), False
    return conversation, True


def _token_to_id(token: str) -> int | None:
    digits = "".join(ch for ch in token if ch.isdigit())
    return int(digits) if digits else None


def conversation_token(conversation: Conversation) -> str:
    """A short token that names a conversation in reply addresses (``support+c123@...``)."""
    return f"c{conversation.pk}"


def _store_attachment(message: Message, attachment: InboundAttachment) -> Attachment:
    content = attachment.content or b""
    name = attachment.filename or "attachment"
    stored = Attachment(
        message=message,
        filename=name[:255],
        content_type=attachment.content_type[:127] or "application/octet-stream",
        size=len(content),
        content_id=attachment.content_id[:255],
        inline=attachment.inline,
    )
    # Stored under a random name: the customer's name is for the download, never a path on disk.
    stored.file.save(files.storage_name(), ContentFile(content), save=False)
    stored.save()
    return stored


def apply_status_update(*, channel: Channel, update: StatusUpdate) -> bool:
    """Move an outbound message's delivery status forward; never back. Returns whether it moved."""
    rank = Message.STATUS_RANK
    if update.status == Message.Status.FAILED:
        earlier = [s for s, r in rank.items() if r < rank["delivered"]]
    elif update.status in rank:
        earlier = [s for s, r in rank.items() if r < rank[update.status]]
    else:
        raise InvalidRequest(f"unknown delivery status {update.status!r}")
    messages = Message.objects.filter(channel=channel, provider_id=update.provider_id, direction="out")
    if not messages.exists():
        raise UnknownMessage(f"no outbound message {update.provider_id} on channel {channel.pk}")
    changes: dict[str, Any] = {"status": update.status, "status_changed_at": timezone.now()}
    if update.status == Message.Status.FAILED:
        changes["status_reason"] = update.reason[:500] or "The provider reported the message as failed."
    moved = messages.filter(status__in=earlier).update(**changes)
    if moved:
        message = messages.get()
        _on_commit(realtime.message_changed, message.pk)
        if update.status == Message.Status.FAILED:
            with transaction.atomic():
                record_activity(
                    conversation=message.conversation,
                    action="delivery_failed",
                    by=None,
                    data={"message": message.pk, "reason": changes["status_reason"]},
                )
    return bool(moved)


# -- conversation state -----------------------------------------------------------------------


def assign_conversation(*, conversation: Conversation, operator: Operator, by: Operator | None) -> Conversation:
    _require_access(by, conversation)
    if not can_see(operator, conversation):
        raise PermissionDenied(_("%(operator)s is not in this conversation's team.") % {"operator": operator})
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.assignee_id == operator.pk:
            return conversation
        previous = conversation.assignee
        conversation.assignee = operator
        conversation.handler = Conversation.Handler.HUMAN
        _touch(conversation, "assignee", "handler")
        record_activity(
            conversation=conversation, action="assigned", by=by, data={"to": operator.pk, "to_name": str(operator)}
        )
        if by is None or by.pk != operator.pk:  # routing or a teammate: the operator may be elsewhere
            _on_commit(realtime.conversation_assigned, conversation.pk, operator.pk)
        if previous is not None:
            transaction.on_commit(lambda: signals.capacity_freed.send(sender=Operator, operator_id=previous.pk))
    return conversation


def unassign_conversation(*, conversation: Conversation, by: Operator | None, reason: str = "") -> Conversation:
    _require_access(by, conversation)
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        previous = conversation.assignee
        if previous is None:
            return conversation
        conversation.assignee = None
        _touch(conversation, "assignee")
        record_activity(
            conversation=conversation,
            action="unassigned",
            by=by,
            data={"from": previous.pk, "from_name": str(previous), **({"reason": reason} if reason else {})},
        )
        transaction.on_commit(lambda: signals.capacity_freed.send(sender=Operator, operator_id=previous.pk))
        transaction.on_commit(
            lambda: signals.conversation_queued.send(sender=Conversation, conversation_id=conversation.pk)
        )
    return conversation


def resolve_conversation(*, conversation: Conversation, by: Operator | None) -> Conversation:
    _require_access(by, conversation)
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.status == Conversation.Status.RESOLVED:
            return conversation
        conversation.status = Conversation.Status.RESOLVED
        conversation.resolved_at = timezone.now()
        conversation.snoozed_until = None
        conversation.waiting_since = None
        _touch(conversation, "status", "resolved_at", "snoozed_until", "waiting_since")
        record_activity(conversation=conversation, action="resolved", by=by)
        if conversation.assignee_id:
            assignee_id = conversation.assignee_id
            transaction.on_commit(lambda: signals.capacity_freed.send(sender=Operator, operator_id=assignee_id))
    return conversation


def reopen_conversation(*, conversation: Conversation, by: Operator | None) -> Conversation:
    _require_access(by, conversation)
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
        _touch(conversation, "status", "resolved_at", "snoozed_until")
        record_activity(conversation=conversation, action="reopened", by=by)
    return conversation


def snooze_conversation(*, conversation: Conversation, until: datetime, by: Operator | None) -> Conversation:
    _require_access(by, conversation)
    if until <= timezone.now():
        raise ReplyRefused(_("Snooze until a time in the future."))
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.status == Conversation.Status.RESOLVED:
            raise ReplyRefused(_("A resolved conversation cannot be snoozed."))
        conversation.status = Conversation.Status.SNOOZED
        conversation.snoozed_until = until
        _touch(conversation, "status", "snoozed_until")
        record_activity(conversation=conversation, action="snoozed", by=by, data={"until": until.isoformat()})
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
            _touch(conversation, "status", "snoozed_until")
            record_activity(conversation=conversation, action="woke", by=None)
    return due


def set_priority(*, conversation: Conversation, priority: int, by: Operator | None) -> Conversation:
    _require_access(by, conversation)
    if priority not in Conversation.Priority.values:
        raise ReplyRefused(_("Unknown priority."))
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.priority == priority:
            return conversation
        conversation.priority = priority
        _touch(conversation, "priority")
        record_activity(
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
            _on_commit(realtime.presence_changed, operator.pk)
            if presence == Operator.Presence.ONLINE:
                transaction.on_commit(lambda: signals.capacity_freed.send(sender=Operator, operator_id=operator.pk))
    return operator


def opt_out(*, channel: Channel, customer: Customer, reason: str = "") -> None:
    with transaction.atomic():
        _, created = OptOut.objects.get_or_create(channel=channel, customer=customer, defaults={"reason": reason})
        if created:
            conversation = customer.conversations.open().first()
            if conversation is not None:
                record_activity(conversation=conversation, action="opted_out", by=None, data={"channel": channel.name})


def opt_in(*, channel: Channel, customer: Customer) -> None:
    with transaction.atomic():
        deleted, _ = OptOut.objects.filter(channel=channel, customer=customer).delete()
        if deleted:
            conversation = customer.conversations.open().first()
            if conversation is not None:
                record_activity(conversation=conversation, action="opted_in", by=None, data={"channel": channel.name})


# -- channels ---------------------------------------------------------------------------------


def create_channel(
    *,
    kind: str,
    name: str,
    team: Any = None,
    channel_settings: dict[str, Any] | None = None,
    bot_enabled: bool = False,
) -> Channel:
    from inbox.transport import connector_class

    connector = connector_class(kind)
    values = dict(channel_settings or {})
    connector.validate_settings(values)
    medium = connector.medium_for(values)
    with transaction.atomic():
        channel = Channel.objects.create(
            kind=kind, medium=medium, name=name, team=team, settings=values, bot_enabled=bot_enabled
        )
        record(
            action="created",
            target=channel,
            details={"secret_keys": sorted(set(values) & set(connector.secret_settings))},
        )
    try:
        # Registers the webhook with the provider (Telegram, Viber), which may call it at once
        # (Viber does): so the channel is committed first, and removed again when refused.
        connector_for(channel).connect()
    except Exception:
        channel.delete()
        raise
    return channel


def set_channel_active(*, channel: Channel, active: bool) -> Channel:
    """Switch a channel on or off; its connector registers or removes the provider's webhook.

    Switched on first and then connected (the provider may call the webhook at once), and off
    again when the provider refuses.
    """
    if channel.is_active == active:
        return channel
    connector = connector_for(channel)
    if not active:
        connector.disconnect()
    channel.is_active = active
    channel.save(update_fields=["is_active"])  # saving also empties the webhook view's channel cache
    if active:
        try:
            connector.connect()
        except Exception:
            channel.is_active = False
            channel.save(update_fields=["is_active"])
            raise
    return channel


def remove_channel(*, channel: Channel) -> bool:
    """Remove a channel (its webhook first). One with messages is switched off instead, so its
    history stays; returns whether it was deleted."""
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk)
        connector_for(channel).disconnect()
        if Message.objects.filter(channel=channel).exists():
            channel.is_active = False
            channel.save(update_fields=["is_active"])
            return False
        channel.delete()
    return True
