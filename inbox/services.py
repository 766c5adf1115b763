"""The core's writers: every change to conversations and messages goes through these functions.

Each one checks permission and state, writes in one transaction, and defers side effects (tasks,
broadcasts, hooks) with ``transaction.on_commit`` so nobody ever sees or acts on a rolled-back row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from config import db
from customers.models import Customer
from customers.services import InvalidAddress, link_identity, normalise_address, resolve_customer
from inbox import realtime, signals
from inbox.models import Attachment, Channel, Conversation, Message, Operator, OptOut
from inbox.transport import (
    InboundAttachment,
    InboundMessage,
    InvalidRequest,
    MessageTemplate,
    PermanentError,
    StatusUpdate,
    TransientError,
    connector_for,
)

logger = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 6
# A message still ``queued`` this long after its last change lost its task; one ``sending`` this
# long lost its worker.
QUEUED_STUCK_AFTER = timedelta(seconds=60)
SENDING_STUCK_AFTER = timedelta(minutes=5)


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
    kind = connector.identity_kind
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
                address=connector.normalise_address(inbound.address),
                provider_id=inbound.provider_id,
                status=Message.Status.RECEIVED,
                metadata={**inbound.metadata, **({"auto_reply": True} if inbound.auto_reply else {})},
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
        return Message.objects.get(channel=channel, provider_id=inbound.provider_id)
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
    stored.file.save(name, ContentFile(content), save=False)
    stored.save()
    return stored


def sanitize_html(html: str) -> str:
    import nh3

    return nh3.clean(
        html,
        tags={
            "a",
            "b",
            "blockquote",
            "br",
            "code",
            "div",
            "em",
            "h1",
            "h2",
            "h3",
            "h4",
            "hr",
            "i",
            "img",
            "li",
            "ol",
            "p",
            "pre",
            "span",
            "strong",
            "table",
            "tbody",
            "td",
            "th",
            "thead",
            "tr",
            "u",
            "ul",
        },
        attributes={"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "td": {"colspan", "rowspan"}},
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
    )


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


# -- outbound --------------------------------------------------------------------------------


def reachable_channels(*, customer: Customer) -> list[Channel]:
    """The channels a reply to this customer can go out on (they have an address there)."""
    kinds = set(customer.identities.values_list("kind", flat=True))
    channels = []
    for channel in Channel.objects.filter(is_active=True).select_related("team"):
        try:
            if connector_for(channel).identity_kind in kinds:
                channels.append(channel)
        except Exception:  # noqa: S112 - an unknown kind is simply not reachable
            continue
    return channels


def _address_on(channel: Channel, customer: Customer) -> str:
    last = (
        Message.objects.filter(customer=customer, channel=channel, direction=Message.Direction.INBOUND)
        .exclude(address="")
        .order_by("-created_at")
        .values_list("address", flat=True)
        .first()
    )
    if last:
        return last
    kind = connector_for(channel).identity_kind
    identity = customer.identities.filter(kind=kind).order_by("-created_at").first()
    if identity is None:
        raise ReplyRefused(
            _("%(customer)s has no address on %(channel)s.")
            % {"customer": customer.display_name, "channel": channel.name}
        )
    return identity.value


def _refusal_and_address(conversation: Conversation, channel: Channel, *, free_form: bool = True) -> tuple[str, str]:
    """(why a reply on ``channel`` cannot go out now or '', the customer's address there).

    ``free_form=False`` asks about an approved template, which the channel's window does not stop.
    """
    if not channel.is_active:
        return _("%(channel)s is switched off.") % {"channel": channel.name}, ""
    if OptOut.objects.filter(channel=channel, customer_id=conversation.customer_id).exists():
        return _("The customer opted out of %(channel)s.") % {"channel": channel.name}, ""
    try:
        address = _address_on(channel, conversation.customer)
    except ReplyRefused as exc:
        return exc.reason, ""
    if not free_form:
        return "", address
    return connector_for(channel).refusal(conversation=conversation, address=address), address


def reply_refusal(*, conversation: Conversation, channel: Channel) -> str:
    """Why a reply on ``channel`` cannot go out now ('' when it can), in words for the operator."""
    return _refusal_and_address(conversation, channel)[0]


def reply(
    *,
    conversation: Conversation,
    text: str,
    by: Operator | None,
    sender: str = Message.Sender.OPERATOR,
    channel: Channel | None = None,
    metadata: dict[str, Any] | None = None,
    attachments: tuple[InboundAttachment, ...] = (),
) -> Message:
    """Queue a message to the customer (transactional outbox); the worker delivers it."""
    from inbox import tasks

    _require_access(by, conversation)
    text = text.strip()
    if not text and not attachments:
        raise ReplyRefused(_("The message is empty."))
    channel = channel or conversation.last_channel
    if channel is None:
        raise ReplyRefused(_("Pick a channel: the customer has not written on any yet."))
    refusal, address = _refusal_and_address(conversation, channel, free_form=not (metadata or {}).get("template"))
    if refusal:
        raise ReplyRefused(refusal)
    with transaction.atomic():
        now = timezone.now()
        message = Message.objects.create(
            conversation=conversation,
            customer_id=conversation.customer_id,
            channel=channel,
            kind=Message.Kind.MESSAGE,
            direction=Message.Direction.OUTBOUND,
            sender=sender,
            author=by,
            text=text,
            address=address,
            status=Message.Status.QUEUED,
            status_changed_at=now,
            metadata=metadata or {},
            created_at=now,
        )
        for attachment in attachments:
            _store_attachment(message, attachment)
        fields = ["last_message_at", "last_message_preview"]
        conversation.last_message_at = now
        conversation.last_message_preview = _preview(text)
        if sender == Message.Sender.OPERATOR:
            conversation.waiting_since = None
            fields.append("waiting_since")
            if conversation.handler == Conversation.Handler.BOT:
                conversation.handler = Conversation.Handler.HUMAN
                fields.append("handler")
                record_activity(conversation=conversation, action="taken_over", by=by)
            if conversation.assignee_id is None and by is not None:
                conversation.assignee = by
                fields.append("assignee")
                record_activity(
                    conversation=conversation, action="assigned", by=by, data={"to": by.pk, "to_name": str(by)}
                )
        _touch(conversation, *fields)
        _on_commit(realtime.message_created, message.pk)
        _on_commit(tasks.enqueue_delivery, message.pk)
    return message


# -- approved templates (WhatsApp outside its 24-hour window) ---------------------------------------


def sendable_templates(*, conversation: Conversation, channel: Channel) -> list[MessageTemplate]:
    """The channel's approved templates when they are the way to reach the customer there now:
    a free-form reply is refused (the window is closed) but nothing else stops a message."""
    templates = connector_for(channel).templates()
    if not templates or not _refusal_and_address(conversation, channel)[0]:
        return []
    if _refusal_and_address(conversation, channel, free_form=False)[0]:
        return []
    return templates


def template_defaults(*, template: MessageTemplate, conversation: Conversation, by: Operator | None) -> dict[str, str]:
    """Values of a template's variables that can be filled in from the conversation."""
    customer = conversation.customer
    operator_name = str(by) if by is not None else ""
    known = {
        "customer.name": customer.name,
        "customer.first_name": (customer.name.split() or [""])[0],
        "operator.name": operator_name,
        "operator.first_name": (operator_name.split() or [""])[0],
        "team.name": conversation.team.name if conversation.team_id and conversation.team else "",
        "conversation.id": str(conversation.pk),
    }
    return {v.key: known.get(v.fill, "") for v in template.variables if v.fill}


def send_template(
    *,
    conversation: Conversation,
    channel: Channel,
    template: str,
    variables: dict[str, str],
    by: Operator | None,
) -> Message:
    """Queue one of the channel's approved templates (``template`` is its key, a Twilio ContentSid).

    It rides the same outbound path as :func:`reply` and is allowed where only the channel's window
    refuses a free-form reply; an opt-out or a switched-off channel still stop it. Variables left
    empty are filled from the conversation where the template says how; any still empty refuse.
    """
    _require_access(by, conversation)
    chosen = next((t for t in connector_for(channel).templates() if t.key == template), None)
    if chosen is None:
        raise ReplyRefused(_("%(channel)s has no such approved template.") % {"channel": channel.name})
    values = template_defaults(template=chosen, conversation=conversation, by=by)
    values.update({k: v.strip() for k, v in variables.items() if v and v.strip()})
    filled = {}
    for variable in chosen.variables:
        value = values.get(variable.key, "")
        label = variable.label or _("Variable %(key)s") % {"key": variable.key}
        if not value:
            raise ReplyRefused(_("Fill in %(variable)s of the template.") % {"variable": label})
        if any(ch in value for ch in "\n\r\t") or len(value) > 1000:
            raise ReplyRefused(
                _("%(variable)s must be one line of at most 1000 characters (WhatsApp's rule).") % {"variable": label}
            )
        filled[variable.key] = value
    metadata = {"template": {"key": chosen.key, "content_sid": chosen.key, "name": chosen.name, "variables": filled}}
    return reply(conversation=conversation, text=chosen.render(filled), by=by, channel=channel, metadata=metadata)


def update_message(
    *, message_id: int, change: Callable[[dict[str, Any]], tuple[dict[str, Any], str | None]]
) -> Message:
    """Rewrite an entry a connector keeps up to date (a call's progress) under a row lock.

    ``change`` gets the current metadata and returns the new metadata and the new text (``None``
    keeps the text). Operators see the change live.
    """
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        metadata, text = change(dict(message.metadata))
        message.metadata = metadata
        fields = ["metadata"]
        if text is not None:
            message.text = text
            fields.append("text")
        message.save(update_fields=fields)
        _on_commit(realtime.message_changed, message.pk)
        if text is not None:
            # The inbox list shows the latest entry's summary: keep it in step ("Incoming call" →
            # "Call answered by Alice · 2:05").
            conversation = Conversation.objects.get(pk=message.conversation_id)
            if conversation.last_message_at == message.created_at and conversation.last_message_preview != _preview(
                text
            ):
                conversation.last_message_preview = _preview(text)
                _touch(conversation, "last_message_preview")
    return message


def record_outbound_entry(
    *,
    channel: Channel,
    address: str,
    kind: str,
    provider_id: str,
    text: str,
    metadata: dict[str, Any],
    by: Operator | None,
) -> Message:
    """Record in the customer's thread something we did on a channel outside the outbox: a call an
    operator placed from the browser. Idempotent on ``provider_id``; never queued for delivery.

    It joins the customer's open conversation, else their latest one (without reopening it); a
    number nobody has talked to yet gets a new conversation, assigned to the operator who called.
    """
    connector = connector_for(channel)
    with transaction.atomic():
        existing = Message.objects.filter(channel=channel, provider_id=provider_id).first()
        if existing is not None:
            return existing
        customer, _identity = resolve_customer(kind=connector.identity_kind, value=address)
        conversation = (
            Conversation.objects.select_for_update().filter(customer=customer).open().first()
            or Conversation.objects.filter(customer=customer).order_by("-last_message_at").first()
        )
        now = timezone.now()
        if conversation is None:
            try:
                with transaction.atomic():
                    conversation = Conversation.objects.create(
                        customer=customer,
                        team=channel.team,
                        handler=Conversation.Handler.HUMAN,
                        assignee=by,
                        last_message_at=now,
                    )
            except IntegrityError:  # the customer wrote at this very moment
                conversation = Conversation.objects.select_for_update().filter(customer=customer).open().get()
        message = Message(
            conversation=conversation,
            customer=customer,
            channel=channel,
            kind=kind,
            direction=Message.Direction.OUTBOUND,
            sender=Message.Sender.OPERATOR if by is not None else Message.Sender.SYSTEM,
            author=by,
            text=text,
            address=connector.normalise_address(address),
            provider_id=provider_id,
            status=Message.Status.NONE,
            metadata=metadata,
            created_at=now,
        )
        try:
            with transaction.atomic():
                message.save()
        except IntegrityError:
            return Message.objects.get(channel=channel, provider_id=provider_id)
        conversation.last_message_at = now
        conversation.last_message_preview = _preview(text)
        fields = ["last_message_at", "last_message_preview"]
        if by is not None and conversation.status != Conversation.Status.RESOLVED:
            # An operator who calls the customer is working the conversation, as with a reply.
            if conversation.handler == Conversation.Handler.BOT:
                conversation.handler = Conversation.Handler.HUMAN
                fields.append("handler")
                record_activity(conversation=conversation, action="taken_over", by=by)
            if conversation.assignee_id is None:
                conversation.assignee = by
                fields.append("assignee")
                record_activity(
                    conversation=conversation, action="assigned", by=by, data={"to": by.pk, "to_name": str(by)}
                )
        _touch(conversation, *fields)
        _on_commit(realtime.message_created, message.pk)
    return message


def add_note(*, conversation: Conversation, text: str, by: Operator) -> Message:
    """A private note: part of the thread, never sent to the customer."""
    _require_access(by, conversation)
    text = text.strip()
    if not text:
        raise ReplyRefused(_("The note is empty."))
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            customer_id=conversation.customer_id,
            kind=Message.Kind.NOTE,
            direction=Message.Direction.INTERNAL,
            sender=Message.Sender.OPERATOR,
            author=by,
            text=text,
            created_at=timezone.now(),
        )
        _on_commit(realtime.message_created, message.pk)
    return message


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str
    retry_in: float | None = None


def deliver_message(*, message_id: int) -> DeliveryOutcome:
    """Send one queued message: claim it, send it, record the result. Safe to call twice."""
    now = timezone.now()
    claimed = Message.objects.filter(pk=message_id, status=Message.Status.QUEUED).update(
        status=Message.Status.SENDING, attempts=F("attempts") + 1, status_changed_at=now
    )
    if not claimed:
        return DeliveryOutcome(status="not-queued")
    message = Message.objects.select_related("channel", "conversation").get(pk=message_id)
    _on_commit(realtime.message_changed, message.pk)
    assert message.channel is not None  # noqa: S101 - outbound messages always have a channel
    connector = connector_for(message.channel)
    try:
        result = connector.send(message, message.address)
    except PermanentError as exc:
        _fail_message(message, exc.reason)
        return DeliveryOutcome(status="failed")
    except TransientError as exc:
        return _retry_or_fail(message, exc.reason, exc.retry_after)
    except Exception as exc:
        logger.exception("sending message %s crashed", message.pk)
        return _retry_or_fail(message, f"{type(exc).__name__}: {exc}", None)
    rank = Message.STATUS_RANK
    status = result.status if result.status in rank and rank[result.status] >= rank["sent"] else "sent"
    Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
        status=status, provider_id=result.provider_id, status_changed_at=timezone.now(), status_reason=""
    )
    realtime.message_changed(message.pk)
    message.provider_id = result.provider_id
    try:
        connector.sent(message)
    except Exception:
        logger.exception("after-send hook of message %s failed", message.pk)
    return DeliveryOutcome(status=status)


def _retry_or_fail(message: Message, reason: str, retry_after: float | None) -> DeliveryOutcome:
    if message.attempts >= MAX_DELIVERY_ATTEMPTS:
        _fail_message(message, f"Gave up after {message.attempts} attempts: {reason}")
        return DeliveryOutcome(status="failed")
    Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
        status=Message.Status.QUEUED, status_reason=f"Retrying: {reason}"[:500], status_changed_at=timezone.now()
    )
    realtime.message_changed(message.pk)
    backoff = retry_after if retry_after is not None else min(300.0, 2.0**message.attempts)
    return DeliveryOutcome(status="queued", retry_in=backoff)


def _fail_message(message: Message, reason: str) -> None:
    with transaction.atomic():
        moved = Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
            status=Message.Status.FAILED, status_reason=reason[:500], status_changed_at=timezone.now()
        )
        if moved:
            record_activity(
                conversation=message.conversation,
                action="delivery_failed",
                by=None,
                data={"message": message.pk, "reason": reason[:500]},
            )
            _on_commit(realtime.message_changed, message.pk)


def retry_message(*, message: Message, by: Operator) -> Message:
    """Send a failed message again on the same channel."""
    from inbox import tasks

    _require_access(by, message.conversation)
    if message.status != Message.Status.FAILED:
        raise ReplyRefused(_("Only a failed message can be retried."))
    assert message.channel is not None  # noqa: S101
    free_form = not message.metadata.get("template")
    refusal = _refusal_and_address(message.conversation, message.channel, free_form=free_form)[0]
    if refusal:
        raise ReplyRefused(refusal)
    with transaction.atomic():
        Message.objects.filter(pk=message.pk, status=Message.Status.FAILED).update(
            status=Message.Status.QUEUED, attempts=0, status_reason="", status_changed_at=timezone.now()
        )
        record_activity(conversation=message.conversation, action="retried", by=by, data={"message": message.pk})
        _on_commit(realtime.message_changed, message.pk)
        _on_commit(tasks.enqueue_delivery, message.pk)
    message.refresh_from_db()
    return message


def resend_message(*, message: Message, channel: Channel, by: Operator) -> Message:
    """Send the text of a failed message as a new message on another channel of the customer."""
    if message.direction != Message.Direction.OUTBOUND:
        raise ReplyRefused(_("Only our own messages can be resent."))
    with transaction.atomic():
        copy = reply(
            conversation=message.conversation,
            text=message.text,
            by=by,
            sender=message.sender,
            channel=channel,
            metadata={"resent_from": message.pk},
        )
        record_activity(
            conversation=message.conversation,
            action="resent",
            by=by,
            data={"message": message.pk, "channel": channel.name},
        )
    return copy


def sweep_outbox() -> list[int]:
    """Re-enqueue messages whose delivery task was lost; fail those whose send outcome is unknown.

    A message stuck in ``sending`` may or may not have reached the provider. Connectors whose
    provider deduplicates on our id (``idempotent_send``) are simply tried again; for the others we
    mark the message failed with the reason rather than risk sending it twice: the operator sees it
    and can retry in one click.
    """
    from inbox import tasks

    now = timezone.now()
    queued = list(
        Message.objects.filter(
            status=Message.Status.QUEUED, status_changed_at__lt=now - QUEUED_STUCK_AFTER
        ).values_list("pk", flat=True)[:500]
    )
    for pk in queued:
        Message.objects.filter(pk=pk, status=Message.Status.QUEUED).update(status_changed_at=now)
        tasks.enqueue_delivery(pk)
    stuck = Message.objects.filter(
        status=Message.Status.SENDING, status_changed_at__lt=now - SENDING_STUCK_AFTER
    ).select_related("channel", "conversation")[:500]
    for message in stuck:
        assert message.channel is not None  # noqa: S101
        if getattr(connector_for(message.channel), "idempotent_send", False):
            if Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
                status=Message.Status.QUEUED, status_changed_at=now
            ):
                tasks.enqueue_delivery(message.pk)
                queued.append(message.pk)
        else:
            _fail_message(message, "The send was interrupted and its outcome is unknown; retry if it did not arrive.")
    return queued


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
    return Channel.objects.create(
        kind=kind, medium=medium, name=name, team=team, settings=values, bot_enabled=bot_enabled
    )
