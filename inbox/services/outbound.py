"""The way out: an operator's or the bot's reply is queued as a message, then sent by the worker.

:func:`reply` (and :func:`send_template`) checks that the channel can reach the customer now,
stores the message ``queued`` in the caller's transaction (a transactional outbox) and, after
commit, enqueues a Celery task (``inbox.tasks.deliver_message``). :func:`deliver_message` claims the
row (``queued → sending``), sends it through the channel's connector from the transport registry
and records ``sent`` with the provider's id; providers' status callbacks then move it forward
(:func:`apply_status_update`). A transient error is retried with backoff; a
permanent one, or too many attempts, marks it ``failed`` with a reason the operator can act on
(:func:`retry_message`, :func:`resend_message`). :func:`sweep_outbox` re-enqueues messages whose
task was lost and settles those whose worker was. Notes and entries recorded outside the outbox
(a call placed from the browser, its progress) are written here too and never queued.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from common import db
from common.events import send_on_commit
from customers.models import Customer
from customers.services import InvalidAddress, resolve_customer
from inbox import extensions, signals
from inbox.models import Channel, Conversation, Message, Operator, OptOut
from inbox.realtime import publish
from inbox.services import activity, conversations
from inbox.services.attachments import store_attachment
from inbox.services.conversations import ReplyRefused
from inbox.transport import (
    ConfigurationError,
    Connector,
    InboundAttachment,
    InvalidRequest,
    MessageTemplate,
    NotYet,
    PermanentError,
    StatusUpdate,
    TransientError,
    connector_for,
)

logger = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 6
# A message still ``queued`` this long after it was due (its last change, or the time its retry
# was scheduled for) lost its task: the sweeper (every 10 s) enqueues it again.
QUEUED_STUCK_AFTER = timedelta(seconds=10)
# A message ``sending`` this long whose sender no longer holds its session lock lost its worker
# (PostgreSQL: a killed worker's lock goes with its connection, see common.db.session_lock) ...
SENDING_ORPHANED_AFTER = timedelta(seconds=10)
# ... and, where nobody can tell (SQLite, a colliding lock), one ``sending`` this long.
SENDING_STUCK_AFTER = timedelta(minutes=5)
# The advisory-lock namespace of messages being sent ("PS": Parley sending).
SENDING_LOCKS = 0x5053
# Stored as the message's status reason (like the providers' own reasons, not translated).
UNKNOWN_OUTCOME = (
    "The send was interrupted: this message may not have been sent. Check with the customer before resending."
)


def reachable_channels(*, customer: Customer) -> list[Channel]:
    """The channels a reply to this customer can go out on (they have an address there)."""
    # All identities, not their kinds alone: a thread has prefetched them (no query then).
    kinds = {identity.kind for identity in customer.identities.all()}
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


def _refusal_and_address(
    conversation: Conversation, channel: Channel, *, free_form: bool = True, address: str = ""
) -> tuple[str, str]:
    """(why a reply on ``channel`` cannot go out now or '', the customer's address there).

    ``free_form=False`` asks about an approved template, which the channel's window does not stop.
    ``address`` is one the caller was given for this customer (see :func:`reply`).
    """
    if not channel.is_active:
        return _("%(channel)s is switched off.") % {"channel": channel.name}, ""
    if OptOut.objects.filter(channel=channel, customer_id=conversation.customer_id).exists():
        return _("The customer opted out of %(channel)s.") % {"channel": channel.name}, ""
    if address:
        try:
            address = connector_for(channel).normalise_address(address)
        except InvalidAddress:
            return _("%(address)s is not an address on %(channel)s.") % {
                "address": address,
                "channel": channel.name,
            }, ""
    else:
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


def created_event(message: Message, kind: str) -> None:
    """Announce a new message (``inbound``, ``outbound`` or ``note``) after commit."""
    send_on_commit(
        signals.message_created,
        message_id=message.pk,
        conversation_id=message.conversation_id,
        customer_id=message.customer_id,
        kind=kind,
    )


def status_event(message: Message, old: str, new: str) -> None:
    """Announce a move of an outbound message's delivery status after commit."""
    send_on_commit(
        signals.message_status_changed,
        message_id=message.pk,
        conversation_id=message.conversation_id,
        old=old,
        new=new,
    )


def _take_over(conversation: Conversation, by: Operator | None, fields: list[str]) -> None:
    """An operator who writes to the customer (or calls them) works the conversation from now on."""
    if conversation.handler == Conversation.Handler.BOT:
        conversation.handler = Conversation.Handler.HUMAN
        fields.append("handler")
        activity.record_activity(conversation=conversation, action="taken_over", by=by)
        send_on_commit(signals.conversation_handed_off, conversation_id=conversation.pk, reason="taken_over")
    if conversation.assignee_id is None and by is not None:
        conversation.assignee = by
        fields.append("assignee")
        activity.record_activity(
            conversation=conversation, action="assigned", by=by, data={"to": by.pk, "to_name": str(by)}
        )
        send_on_commit(
            signals.conversation_assigned, conversation_id=conversation.pk, assignee_id=by.pk, previous_id=None
        )


def reply(
    *,
    conversation: Conversation,
    text: str,
    by: Operator | None,
    sender: str = Message.Sender.OPERATOR,
    channel: Channel | None = None,
    metadata: dict[str, Any] | None = None,
    attachments: tuple[InboundAttachment, ...] = (),
    address: str = "",
    send_at: datetime | None = None,
) -> Message:
    """Queue a message to the customer (transactional outbox); the worker delivers it.

    ``address`` sends to an address the customer gave us but we never heard from (the email a
    website chat visitor left for a late reply); by default the reply goes where the customer last
    wrote on ``channel``, else to their identity there. Operators' replies never pass one.

    With ``send_at`` ("send later") the message waits as ``scheduled`` instead, seen in the thread
    and editable or cancellable until the scheduler releases it at that time
    (:func:`release_scheduled`); it then takes the same way out as any reply.
    """
    from inbox import tasks  # a true cycle: the tasks call these services

    conversations.require_access(by, conversation)
    text = text.strip()
    if not text and not attachments:
        raise ReplyRefused(_("The message is empty."))
    channel = channel or conversation.last_channel
    if channel is None:
        raise ReplyRefused(_("Pick a channel: the customer has not written on any yet."))
    refusal, address = _refusal_and_address(
        conversation, channel, free_form=not (metadata or {}).get("template"), address=address
    )
    if not refusal and by is not None and sender == Message.Sender.OPERATOR:
        refusal = extensions.reply_refusal_for(conversation, by)
    if refusal:
        raise ReplyRefused(refusal)
    if send_at is not None:
        return _schedule(conversation, channel, address, text, by, send_at, metadata, attachments)
    with transaction.atomic():
        now = timezone.now()
        fields = ["last_message_at", "last_message_preview"]
        conversation.last_message_at = now
        conversation.last_message_preview = conversations.preview(text)
        if sender == Message.Sender.OPERATOR:
            conversation.waiting_since = None
            fields.append("waiting_since")
            _take_over(conversation, by, fields)
        # Stored after the entries above ("Alice took over"), so that in id order (the website
        # chat's) she joins before she writes; the thread orders by time, where the reply stays first.
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
            store_attachment(message=message, attachment=attachment)
        created_event(message, "outbound")
        conversations.touch(conversation, *fields)
        transaction.on_commit(partial(publish.message_created, message.pk))
        transaction.on_commit(partial(tasks.enqueue_delivery, message.pk))
    return message


# -- send later -------------------------------------------------------------------------------------

SCHEDULE_AT_LEAST = timedelta(minutes=1)
SCHEDULE_AT_MOST = timedelta(days=365)


def check_send_at(send_at: datetime) -> None:
    """Refuse a time in the past, too close to be worth scheduling, or more than a year away."""
    now = timezone.now()
    if send_at < now + SCHEDULE_AT_LEAST:
        raise ReplyRefused(_("Pick a time at least a minute from now."))
    if send_at > now + SCHEDULE_AT_MOST:
        raise ReplyRefused(_("Pick a time within a year."))


def _schedule(
    conversation: Conversation,
    channel: Channel,
    address: str,
    text: str,
    by: Operator | None,
    send_at: datetime,
    metadata: dict[str, Any] | None,
    attachments: tuple[InboundAttachment, ...],
) -> Message:
    check_send_at(send_at)
    with transaction.atomic():
        now = timezone.now()
        message = Message.objects.create(
            conversation=conversation,
            customer_id=conversation.customer_id,
            channel=channel,
            kind=Message.Kind.MESSAGE,
            direction=Message.Direction.OUTBOUND,
            sender=Message.Sender.OPERATOR,
            author=by,
            text=text,
            address=address,
            status=Message.Status.SCHEDULED,
            status_changed_at=now,
            send_at=send_at,
            metadata=metadata or {},
            created_at=now,
        )
        for attachment in attachments:
            store_attachment(message=message, attachment=attachment)
        transaction.on_commit(partial(publish.message_created, message.pk))
    return message


def _scheduled_for_change(message: Message, by: Operator | None) -> None:
    conversations.require_access(by, message.conversation)
    if message.status != Message.Status.SCHEDULED:
        raise ReplyRefused(_("This message is not waiting to be sent any more."))


def edit_scheduled(*, message: Message, text: str, send_at: datetime, by: Operator | None) -> Message:
    """Change a scheduled reply's text or time, while it still waits (a conditional update: the
    scheduler may have released it an instant ago, which wins)."""
    _scheduled_for_change(message, by)
    text = text.strip()
    if not text and not message.attachments.exists():
        raise ReplyRefused(_("The message is empty."))
    check_send_at(send_at)
    with transaction.atomic():
        changed = Message.objects.filter(pk=message.pk, status=Message.Status.SCHEDULED).update(
            text=text, send_at=send_at, status_changed_at=timezone.now()
        )
        if not changed:
            raise ReplyRefused(_("This message is not waiting to be sent any more."))
        transaction.on_commit(partial(publish.message_changed, message.pk))
    message.refresh_from_db()
    return message


def cancel_scheduled(*, message: Message, by: Operator | None, reason: str = "") -> bool:
    """Cancel a scheduled reply that still waits; False when it had left already."""
    _scheduled_for_change(message, by)
    return (
        _cancel(
            Message.objects.filter(pk=message.pk),
            reason=reason or _("Cancelled by %(name)s") % {"name": by or _("the system")},
        )
        > 0
    )


def _cancel(messages: Any, *, reason: str) -> int:
    ids = list(messages.filter(status=Message.Status.SCHEDULED).values_list("pk", flat=True))
    if not ids:
        return 0
    with transaction.atomic():
        cancelled = Message.objects.filter(pk__in=ids, status=Message.Status.SCHEDULED).update(
            status=Message.Status.CANCELLED, status_reason=reason[:500], status_changed_at=timezone.now()
        )
        for pk in ids:
            transaction.on_commit(partial(publish.message_changed, pk))
    return cancelled


def release_scheduled(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """The scheduler's turn: every scheduled reply that is due goes into the outbox, once.

    Each row is claimed with a conditional update (``scheduled → queued``, and unchanged since it
    was read), so two schedulers, a retry or an edit racing with it never send a reply twice. A
    reply the customer wrote after (``Conversation.last_inbound_at`` later than when it was
    scheduled or last edited) is cancelled instead when ``PARLEY_CANCEL_SCHEDULED_ON_REPLY`` is on:
    it may no longer fit. This costs the way in nothing. A reply whose channel cannot reach the
    customer any more fails with the reason. Returns the ids released.
    """
    from inbox import tasks  # a true cycle: the tasks call these services

    now = now or timezone.now()
    due = list(
        Message.objects.filter(status=Message.Status.SCHEDULED, send_at__lte=now)
        .order_by("send_at")
        .values_list("pk", "status_changed_at")[:limit]
    )
    released: list[int] = []
    for pk, scheduled_at in due:
        with transaction.atomic():
            if not Message.objects.filter(
                pk=pk, status=Message.Status.SCHEDULED, status_changed_at=scheduled_at
            ).update(status=Message.Status.QUEUED, status_changed_at=now, created_at=now):
                continue  # edited, cancelled or released meanwhile: the next run sees it as it is now
            message = Message.objects.select_related("conversation", "channel").get(pk=pk)
            if _release(message, scheduled_at, now):
                transaction.on_commit(partial(tasks.enqueue_delivery, pk))
                released.append(pk)
            transaction.on_commit(partial(publish.message_changed, pk))
    return released


def _release(message: Message, scheduled_at: datetime | None, now: datetime) -> bool:
    """Send a claimed scheduled reply, or end it (cancelled or failed) with the reason; True: sent."""
    conversation = message.conversation
    wrote = conversation.last_inbound_at
    if settings.PARLEY_CANCEL_SCHEDULED_ON_REPLY and wrote and scheduled_at and wrote > scheduled_at:
        reason = _("The customer wrote before it was sent.")
        Message.objects.filter(pk=message.pk).update(status=Message.Status.CANCELLED, status_reason=reason)
        return False
    assert message.channel is not None  # noqa: S101 - scheduled replies always name one
    refusal, _address = _refusal_and_address(conversation, message.channel)
    if refusal:
        Message.objects.filter(pk=message.pk).update(status=Message.Status.FAILED, status_reason=refusal[:500])
        return False
    conversation.last_message_at = now
    conversation.last_message_preview = conversations.preview(message.text)
    conversation.waiting_since = None
    conversations.touch(conversation, "last_message_at", "last_message_preview", "waiting_since")
    return True


def ask_for_phone(
    *, conversation: Conversation, channel: Channel, by: Operator | None, sender: str = Message.Sender.OPERATOR
) -> Message:
    """Queue a message with a "share my phone number" button on a channel that has one; the
    customer's answer links their number (and their other channels' history) to them."""
    if not connector_for(channel).asks_phone:
        raise ReplyRefused(_("%(channel)s cannot ask for a phone number.") % {"channel": channel.name})
    text = _("To find your orders and earlier messages, please share your phone number with the button below.")
    return reply(
        conversation=conversation, text=text, by=by, sender=sender, channel=channel, metadata={"ask_phone": True}
    )


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
    conversations.require_access(by, conversation)
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
        transaction.on_commit(partial(publish.message_changed, message.pk))
        if text is not None:
            # The inbox list shows the latest entry's summary: keep it in step ("Incoming call" →
            # "Call answered by Alice · 2:05").
            conversation = Conversation.objects.get(pk=message.conversation_id)
            if (
                conversation.last_message_at == message.created_at
                and conversation.last_message_preview != conversations.preview(text)
            ):
                conversation.last_message_preview = conversations.preview(text)
                conversations.touch(conversation, "last_message_preview")
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
                send_on_commit(
                    signals.conversation_created,
                    conversation_id=conversation.pk,
                    customer_id=customer.pk,
                    team_id=conversation.team_id,
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
        created_event(message, "outbound")
        conversation.last_message_at = now
        conversation.last_message_preview = conversations.preview(text)
        fields = ["last_message_at", "last_message_preview"]
        if by is not None and conversation.status != Conversation.Status.RESOLVED:
            # An operator who calls the customer is working the conversation, as with a reply.
            _take_over(conversation, by, fields)
        conversations.touch(conversation, *fields)
        transaction.on_commit(partial(publish.message_created, message.pk))
    return message


def add_note(*, conversation: Conversation, text: str, by: Operator) -> Message:
    """A private note: part of the thread, never sent to the customer."""
    conversations.require_access(by, conversation)
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
        created_event(message, "note")
        transaction.on_commit(partial(publish.message_created, message.pk))
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
    # The author too: connectors name them (the widget, a mail's From), one query fewer per reply.
    message = Message.objects.select_related("channel", "conversation", "author").get(pk=message_id)
    transaction.on_commit(partial(publish.message_changed, message.pk))
    assert message.channel is not None  # noqa: S101 - outbound messages always have a channel
    connector = connector_for(message.channel)
    with db.session_lock(SENDING_LOCKS, message.pk):  # while held, the sweeper knows we are alive
        return _send_claimed(message, connector)


def _send_claimed(message: Message, connector: Connector) -> DeliveryOutcome:
    try:
        result = connector.send(message, message.address)
    except PermanentError as exc:
        _fail_message(message, exc.reason)
        return DeliveryOutcome(status="failed")
    except TransientError as exc:
        return _retry_or_fail(message, exc.reason, exc.retry_after)
    except ConfigurationError as exc:
        # Not a crash: the channel's settings are wrong (a revoked OAuth grant, a CA file gone bad).
        # The message waits through its retries, so an admin who fixes the settings meanwhile gets it out.
        logger.warning("channel %s cannot send message %s: %s", message.channel_id, message.pk, exc)
        return _retry_or_fail(message, f"The channel's settings need fixing: {exc}", None)
    except Exception as exc:
        logger.exception("sending message %s crashed", message.pk)
        return _retry_or_fail(message, f"{type(exc).__name__}: {exc}", None)
    rank = Message.STATUS_RANK
    status = result.status if result.status in rank and rank[result.status] >= rank["sent"] else "sent"
    with transaction.atomic():  # the status and its event commit together
        if Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
            status=status, provider_id=result.provider_id, status_changed_at=timezone.now(), status_reason=""
        ):
            status_event(message, Message.Status.QUEUED, status)
    publish.message_changed(message.pk)
    seconds = (timezone.now() - message.created_at).total_seconds()
    kind = message.channel.kind if message.channel is not None else ""
    signals.message_sent.send_robust(sender=Message, message_id=message.pk, kind=kind, seconds=seconds)
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
    backoff = retry_after if retry_after is not None else min(300.0, 2.0**message.attempts)
    # ``status_changed_at`` of a queued row is when it is due: the sweeper leaves a row alone until
    # its retry is late (a worker killed with the retry in its memory), never before its backoff.
    Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
        status=Message.Status.QUEUED,
        status_reason=f"Retrying: {reason}"[:500],
        status_changed_at=timezone.now() + timedelta(seconds=backoff),
    )
    publish.message_changed(message.pk)
    return DeliveryOutcome(status="queued", retry_in=backoff)


def _fail_message(message: Message, reason: str) -> None:
    with transaction.atomic():
        moved = Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
            status=Message.Status.FAILED, status_reason=reason[:500], status_changed_at=timezone.now()
        )
        if moved:
            status_event(message, Message.Status.QUEUED, Message.Status.FAILED)
            activity.record_activity(
                conversation=message.conversation,
                action="delivery_failed",
                by=None,
                data={"message": message.pk, "reason": reason[:500]},
            )
            transaction.on_commit(partial(publish.message_changed, message.pk))


# -- providers' status callbacks ---------------------------------------------------------------


class UnknownMessage(Exception):
    """A status update names a message we do not know (yet): the event is retried."""


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
    changes: dict[str, Any] = {"status": update.status, "status_changed_at": timezone.now(), "status_reason": ""}
    if update.status == Message.Status.FAILED:
        changes["status_reason"] = update.reason[:500] or "The provider reported the message as failed."
    with transaction.atomic():
        message = messages.select_for_update().first()
        if message is None and update.public_id is not None:
            message = _adopt(channel, update.public_id, update)
            if message is not None and update.status != Message.Status.FAILED:
                earlier.append(Message.Status.FAILED)  # it did go out after all
            elif message is None:  # another status of the same message may have just adopted it
                message = messages.select_for_update().first()
        if message is None:
            raise UnknownMessage(f"no outbound message {update.provider_id} on channel {channel.pk}")
        moved = messages.filter(status__in=earlier).update(**changes)
        if moved:
            status_event(message, message.status, update.status)
            transaction.on_commit(partial(publish.message_changed, message.pk))
            if update.status == Message.Status.FAILED:
                activity.record_activity(
                    conversation=message.conversation,
                    action="delivery_failed",
                    by=None,
                    data={"message": message.pk, "reason": changes["status_reason"]},
                )
    return bool(moved)


def _adopt(channel: Channel, public_id: uuid.UUID, update: StatusUpdate) -> Message | None:
    """Our message that ``update`` names by our own id, given the provider's id and locked; or None.

    Raises :class:`NotYet` while that message's send has not answered yet. A send whose answer was
    lost (a timeout: failed, "may or may not have gone out") takes the id: the provider's news says
    it went out, and the operator is not asked to retry it (and send it twice). Runs in the
    caller's transaction: two statuses of the message racing, the second waits for the first's
    lock, then finds the message by the provider's id.
    """
    ours = (
        Message.objects.select_for_update()
        .filter(channel=channel, public_id=public_id, direction="out", provider_id="")
        .first()
    )
    if ours is None:
        return None
    if ours.status in (Message.Status.QUEUED, Message.Status.SENDING):
        raise NotYet(f"status {update.status} for {update.provider_id} came before its send's answer")
    if ours.status != Message.Status.FAILED:
        return None
    Message.objects.filter(pk=ours.pk).update(provider_id=update.provider_id)
    logger.info("message %s: the provider's %s status names it by our id; it went out", public_id, update.status)
    return ours


def retry_message(*, message: Message, by: Operator) -> Message:
    """Send a failed message again on the same channel."""
    from inbox import tasks  # a true cycle: the tasks call these services

    conversations.require_access(by, message.conversation)
    if message.status != Message.Status.FAILED:
        raise ReplyRefused(_("Only a failed message can be retried."))
    assert message.channel is not None  # noqa: S101
    free_form = not message.metadata.get("template")
    refusal = _refusal_and_address(message.conversation, message.channel, free_form=free_form)[0]
    if refusal:
        raise ReplyRefused(refusal)
    with transaction.atomic():
        if Message.objects.filter(pk=message.pk, status=Message.Status.FAILED).update(
            status=Message.Status.QUEUED, attempts=0, status_reason="", status_changed_at=timezone.now()
        ):
            status_event(message, Message.Status.FAILED, Message.Status.QUEUED)
        activity.record_activity(
            conversation=message.conversation, action="retried", by=by, data={"message": message.pk}
        )
        transaction.on_commit(partial(publish.message_changed, message.pk))
        transaction.on_commit(partial(tasks.enqueue_delivery, message.pk))
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
        activity.record_activity(
            conversation=message.conversation,
            action="resent",
            by=by,
            data={"message": message.pk, "channel": channel.name},
        )
    return copy


def sweep_outbox() -> list[int]:
    """Re-enqueue messages whose delivery task was lost; settle those whose sender died mid-send.

    Two indexed queries (``msg_outbox``) and one look at PostgreSQL's lock table. A message stuck in
    ``sending`` may or may not have reached the provider. It counts as stuck once its sender's
    session lock is gone (a dead worker: seconds) or, where that cannot be told, after
    ``SENDING_STUCK_AFTER``. Connectors whose provider deduplicates on our id or can be asked what
    was sent (``idempotent_send``) are simply tried again; for the others the message is marked
    failed, saying it may not have been sent, rather than risk sending it twice: the operator checks
    and retries in one click.
    """
    from inbox import tasks  # a true cycle: the tasks call these services

    now = timezone.now()
    queued = list(
        Message.objects.filter(
            status=Message.Status.QUEUED, status_changed_at__lt=now - QUEUED_STUCK_AFTER
        ).values_list("pk", flat=True)[:500]
    )
    for pk in queued:
        Message.objects.filter(pk=pk, status=Message.Status.QUEUED).update(status_changed_at=now)
        tasks.enqueue_delivery(pk)
    sending = list(
        Message.objects.filter(status=Message.Status.SENDING, status_changed_at__lt=now - SENDING_ORPHANED_AFTER)
        .select_related("channel", "conversation")
        .order_by("status_changed_at")[:500]
    )
    if not sending:
        return queued
    alive = db.session_locks(SENDING_LOCKS)
    for message in sending:
        assert message.channel is not None  # noqa: S101
        timed_out = message.status_changed_at is not None and message.status_changed_at < now - SENDING_STUCK_AFTER
        if not timed_out and (alive is None or message.pk % db.LOCK_KEYS in alive):
            continue  # a live worker is sending it, or we cannot tell yet
        if getattr(connector_for(message.channel), "idempotent_send", False):
            if Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
                status=Message.Status.QUEUED, status_changed_at=now
            ):
                tasks.enqueue_delivery(message.pk)
                queued.append(message.pk)
        else:
            _fail_message(message, UNKNOWN_OUTCOME)
    return queued
