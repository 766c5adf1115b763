"""The way in: providers' raw events are stored first, then processed into messages by the worker.

A webhook or a mailbox poll stores each raw event once (per channel and dedupe key) and returns at
once; the worker parses it and applies what it says: a customer's message goes to
:func:`receive_message` (here), a delivery status to :func:`inbox.services.outbound.apply_status_update`
(the way out's). Processing is idempotent, so a redelivered task, a replay or the sweeper never store
anything twice, and an event whose task was lost is still pending and swept up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from common import db
from common.events import send_on_commit
from common.html import sanitize_html
from customers.models import Customer
from customers.services import InvalidAddress, link_identity, normalise_address, resolve_customer
from inbox import extensions, signals, spool
from inbox.models import Channel, Conversation, InboundEvent, Message
from inbox.realtime import publish
from inbox.services import activity, conversations, outbound
from inbox.services.attachments import store_attachment
from inbox.transport import InboundMessage, InvalidRequest, PermanentError, StatusUpdate, connector_for

logger = logging.getLogger(__name__)

MAX_EVENT_ATTEMPTS = 8


def not_yet_countdown(retries: int) -> float:
    """Seconds before an event waiting for our own send's answer (:class:`NotYet`) runs again.

    2, 4, 6, 8, then every 10 s: about 50 s in all over the attempts, while a send's answer comes
    within its timeout (10 s by default) once the send has started.
    """
    return float(min(2 * (retries + 1), 10))


def record_inbound_event(
    *,
    channel: Channel,
    endpoint: str,
    dedupe_key: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    content_type: str = "",
    spool_when_down: bool = True,
) -> tuple[InboundEvent, bool]:
    """Store a raw provider event (once per channel and dedupe key) and schedule its processing.

    This is the hot path of every webhook, so it is one statement in autocommit —
    ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` on PostgreSQL and SQLite alike — instead of a
    transaction with a savepoint and a second lookup (docs/performance.md: 1 round trip instead of 5).

    When the database does not answer (and we are not inside a caller's transaction), the event
    goes to the webhook spool instead (:mod:`inbox.spool`): the returned event is then unsaved
    (no ``pk``) and counted as new; :func:`drain_spool` stores it once the database is back. Raises
    :class:`inbox.spool.NotDurable` when the spool cannot take it either.
    """
    from inbox import tasks  # a true cycle: the tasks call these services

    event = InboundEvent(
        channel=channel,
        endpoint=endpoint,
        dedupe_key=dedupe_key[:255],
        body=body,
        headers=headers or {},
        content_type=content_type[:127],
        received_at=timezone.now(),
    )
    may_spool = spool_when_down and not connection.in_atomic_block
    if may_spool and spool.skip_database():
        return _spool_event(event), True
    try:
        inserted = db.insert(event, conflict=db.on_conflict("channel_id", "dedupe_key"))
    except (OperationalError, InterfaceError):
        if not may_spool:
            raise
        logger.warning("the database does not answer: webhook event %s spooled", event.dedupe_key, exc_info=True)
        spool.note_database_down()
        return _spool_event(event), True
    if may_spool:
        spool.note_database_up()
        _drain_spool_soon()
    if not inserted:
        return InboundEvent.objects.get(channel=channel, dedupe_key=event.dedupe_key), False
    transaction.on_commit(lambda: tasks.enqueue_webhook_event(event.pk))
    return event, True


def _spool_event(event: InboundEvent) -> InboundEvent:
    global _spooled_here
    spool.write(
        channel_id=event.channel_id,
        endpoint=event.endpoint,
        dedupe_key=event.dedupe_key,
        body=bytes(event.body),
        headers=event.headers,
        content_type=event.content_type,
    )
    _spooled_here = True
    return event


# Whether this process spooled events since its last drain, and the drain running now if any.
_spooled_here = True  # a process that starts drains once: a killed predecessor may have left files
_draining = threading.Lock()


def _drain_spool_soon() -> None:
    """The database answered this process again: drain what it (or another) spooled, in a thread."""
    global _spooled_here
    if not _spooled_here or not _draining.acquire(blocking=False):
        return
    _spooled_here = False
    threading.Thread(target=_drain_in_thread, name="parley-spool-drain", daemon=True).start()


def _drain_in_thread() -> None:
    global _spooled_here
    try:
        drain_spool()
    except Exception:
        _spooled_here = True  # try again after the next stored webhook; the scheduler drains meanwhile
        logger.warning("could not drain the webhook spool yet", exc_info=True)
    finally:
        connection.close()  # this thread's connection goes back to the pool
        _draining.release()


def drain_spool(*, limit: int = 500) -> int:
    """Store spooled webhook events in the database, oldest first; returns how many were new.

    Each goes through :func:`record_inbound_event` (its dedupe key makes a second drain, or the
    provider's own redelivery, harmless) and its file is removed only after that. A database error
    stops the drain with the remaining files in place; a file that cannot be read, or whose channel
    was deleted, is set aside in ``failed/`` with a log line.
    """
    paths = spool.pending(limit)
    if not paths:
        return 0
    stored = 0
    channels: dict[int, Channel | None] = {}
    for path in paths:
        try:
            item = spool.read(path)
        except FileNotFoundError:
            continue  # another drainer took it
        except (ValueError, KeyError, TypeError, OSError):
            logger.error("unreadable webhook spool file %s set aside", path)
            spool.set_aside(path)
            continue
        if item.channel_id not in channels:
            channels[item.channel_id] = Channel.objects.filter(pk=item.channel_id).first()
        channel = channels[item.channel_id]
        if channel is None:
            logger.error("webhook spool file %s names a deleted channel; set aside", path)
            spool.set_aside(path)
            continue
        _event, created = record_inbound_event(
            channel=channel,
            endpoint=item.endpoint,
            dedupe_key=item.dedupe_key,
            body=item.body,
            headers=item.headers,
            content_type=item.content_type,
            spool_when_down=False,
        )
        stored += created
        spool.remove(path)
    spool.note_database_up()
    if stored:
        logger.info("drained %s webhook events from the spool", stored)
    return stored


@dataclass(frozen=True)
class RawEvent:
    """One raw provider event of a batch for :func:`record_inbound_events`."""

    dedupe_key: str
    body: bytes
    headers: dict[str, str] | None = None


# Events of a batch (an import) processed by one task: enough to share the per-task costs (10 a
# task imported 10 000 mails at 189 to 207/s, 25 at 228/s), few enough that every worker process
# gets a share of a fetch and operators see imported mail arrive every fraction of a second.
EVENTS_PER_TASK = 25
# Rows per INSERT: well under SQLite's bound-parameter limit (8 columns a row) and PostgreSQL's.
EVENT_ROWS_PER_INSERT = 100


def record_inbound_events(
    *, channel: Channel, endpoint: str, events: list[RawEvent], content_type: str = ""
) -> list[bool]:
    """Store a batch of raw events (an IMAP import) with one statement per 100 rows.

    The same contract as :func:`record_inbound_event`, for many events at once: each is stored once
    per channel and dedupe key (``INSERT … VALUES (…), (…) ON CONFLICT DO NOTHING RETURNING``), and
    each new one is scheduled for processing after commit. Returns, in the order given, whether each
    event was new; a key repeated within the batch counts once. Call it inside the caller's
    transaction to store something else atomically with the events (the IMAP cursor).
    """
    from inbox import tasks  # a true cycle: the tasks call these services

    now = timezone.now()
    fields = [f for f in InboundEvent._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    row_sql = f"({', '.join(['%s'] * len(fields))})"
    keys = [event.dedupe_key[:255] for event in events]
    first_of: dict[str, int] = {}
    for index, key in enumerate(keys):
        first_of.setdefault(key, index)
    unique = [(key, events[index]) for key, index in first_of.items()]
    created: dict[str, int] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(unique), EVENT_ROWS_PER_INSERT):
            chunk = unique[start : start + EVENT_ROWS_PER_INSERT]
            values: list[Any] = []
            for key, raw in chunk:
                event = InboundEvent(
                    channel=channel,
                    endpoint=endpoint,
                    dedupe_key=key,
                    body=raw.body,
                    headers=raw.headers or {},
                    content_type=content_type[:127],
                    received_at=now,
                )
                values.extend(f.get_db_prep_save(f.pre_save(event, add=True), connection) for f in fields)
            # Names come from the model's own metadata, values are parameters.
            sql = (
                f"INSERT INTO {quote(InboundEvent._meta.db_table)} ({columns}) "  # noqa: S608
                f"VALUES {', '.join([row_sql] * len(chunk))} "
                f"ON CONFLICT ({quote('channel_id')}, {quote('dedupe_key')}) DO NOTHING "
                f"RETURNING {quote('id')}, {quote('dedupe_key')}"
            )
            cursor.execute(sql, values)
            created.update((str(key), int(pk)) for pk, key in cursor.fetchall())
    new_ids = sorted(created.values())

    if new_ids:
        transaction.on_commit(lambda: tasks.enqueue_inbound_events(new_ids))
    return [key in created and first_of[key] == index for index, key in enumerate(keys)]


def process_inbound_event(*, event_id: int) -> None:
    """Parse a stored event and apply what it says. Idempotent: safe to run again after a crash.

    Raises on a failure that may pass (the task retries); marks the event failed, with its error,
    once it keeps failing or can never be parsed. Admins can replay a failed event.
    """
    event = InboundEvent.objects.select_related("channel").filter(pk=event_id).first()
    if event is None or event.status == InboundEvent.Status.PROCESSED:
        return
    if _apply_event(event, retry=True):
        _mark_processed([event.pk])


def process_inbound_events(*, event_ids: Sequence[int]) -> list[int]:
    """Process a batch of stored events (an import's), each as :func:`process_inbound_event` would.

    One query loads them, one statement marks them processed and one broadcast carries their
    messages; each message is still received in its own transaction, so one bad event spoils
    nothing else. Returns the ids of events that failed in a way that may pass (still pending,
    their attempt counted): the caller retries those one by one.
    """
    events = InboundEvent.objects.select_related("channel").filter(pk__in=list(event_ids)).order_by("pk")
    done: list[int] = []
    again: list[int] = []
    with publish.batched():
        for event in events:
            if event.status == InboundEvent.Status.PROCESSED:
                continue
            try:
                if _apply_event(event, retry=False):
                    done.append(event.pk)
            except _TryAgain:
                again.append(event.pk)
        _mark_processed(done)
    return again


class _TryAgain(Exception):
    """An event failed in a way that may pass; it stays pending with the attempt counted."""


def _apply_event(event: InboundEvent, *, retry: bool) -> bool:
    """Apply one event; True when it is done (to be marked processed), False when it failed for good.

    A failure that may pass re-raises the error itself with ``retry`` (the task's own retry policy
    applies), or :class:`_TryAgain` without it.
    """
    connector = connector_for(event.channel)
    try:
        for item in connector.parse(event):
            if isinstance(item, StatusUpdate):
                outbound.apply_status_update(channel=event.channel, update=item)
            else:
                receive_message(channel=event.channel, inbound=_with_downloads(connector, event.channel, item))
    except (InvalidRequest, InvalidAddress) as exc:
        _fail_event(event, f"cannot be read: {exc}", final=True)
        return False
    except Exception as exc:
        final = event.attempts + 1 >= MAX_EVENT_ATTEMPTS
        _fail_event(event, f"{type(exc).__name__}: {exc}", final=final)
        if final:
            logger.exception("inbound event %s failed for good", event.pk)
            return False
        if retry:
            raise
        logger.warning("inbound event %s failed, to be retried: %s", event.pk, exc)
        raise _TryAgain from exc
    return True


def _mark_processed(event_ids: list[int]) -> None:
    if event_ids:
        InboundEvent.objects.filter(pk__in=event_ids).update(
            status=InboundEvent.Status.PROCESSED, processed_at=timezone.now(), error="", attempts=F("attempts") + 1
        )


def _fail_event(event: InboundEvent, error: str, *, final: bool) -> None:
    status = InboundEvent.Status.FAILED if final else InboundEvent.Status.PENDING
    InboundEvent.objects.filter(pk=event.pk).update(status=status, error=error[:4000], attempts=F("attempts") + 1)
    if final:
        logger.warning("inbound event %s on channel %s failed: %s", event.pk, event.channel_id, error)


def replay_inbound_event(*, event: InboundEvent) -> None:
    """Run a failed event again (an admin action)."""
    from inbox import tasks  # a true cycle: the tasks call these services

    InboundEvent.objects.filter(pk=event.pk).update(status=InboundEvent.Status.PENDING, attempts=0, error="")
    tasks.enqueue_inbound_event(event.pk)


def _with_downloads(connector: Any, channel: Channel, inbound: InboundMessage) -> InboundMessage:
    """Fetch linked media before the transaction, unless the message is already stored.

    A download that may work later (a timeout) raises, so the event is retried. One that never
    will (too large, a refused type, gone) is skipped and noted on the message: the customer's
    text is never lost for the sake of one attachment.
    """
    if not any(a.url and a.content is None for a in inbound.attachments):
        return inbound
    if inbound.provider_id and Message.objects.filter(channel=channel, provider_id=inbound.provider_id).exists():
        return inbound
    fetched = []
    skipped = []
    limit = settings.PARLEY_MAX_ATTACHMENT_BYTES
    for attachment in inbound.attachments:
        if attachment.content is None and attachment.url:
            try:
                content, content_type = connector.fetch_attachment(attachment)
                if len(content) > limit:
                    raise PermanentError(f"larger than {limit} bytes")
            except (PermanentError, InvalidRequest) as exc:
                skipped.append({"filename": attachment.filename, "reason": str(exc)})
                logger.warning("skipped attachment %s on channel %s: %s", attachment.filename, channel.pk, exc)
                continue
            attachment = replace(attachment, content_type=content_type or attachment.content_type, content=content)
        fetched.append(attachment)
    metadata = {**inbound.metadata, "skipped_attachments": skipped} if skipped else inbound.metadata
    return replace(inbound, attachments=tuple(fetched), metadata=metadata)


# A pending event this old lost its task (a broker restarted empty, a worker killed). Short, so
# that a fault settles within 30 s; each event is re-enqueued at most once per
# ``RESWEEP_AFTER_SECONDS`` (remembered in Redis), so a real backlog is not enqueued over and over.
INBOUND_STUCK_AFTER = timedelta(seconds=15)
RESWEEP_AFTER_SECONDS = 60


def sweep_inbound_events() -> list[int]:
    """Re-enqueue pending events whose processing task was lost (a broker restart, say)."""
    from inbox import tasks  # a true cycle: the tasks call these services

    cutoff = timezone.now() - INBOUND_STUCK_AFTER
    pending = list(
        InboundEvent.objects.filter(status=InboundEvent.Status.PENDING, received_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )
    lost = [pk for pk in pending if _first_sweep(pk)]
    tasks.enqueue_inbound_events(lost)
    return lost


def _first_sweep(event_id: int) -> bool:
    """Whether the sweeper has not enqueued this event lately (always True when Redis cannot say)."""
    try:
        return bool(cache.add(f"inbound:swept:{event_id}", 1, timeout=RESWEEP_AFTER_SECONDS))
    except Exception:
        return True


# -- a customer's message ------------------------------------------------------------------------


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
    and its activity entry) — see :func:`inbox.realtime.publish.batched`.
    """
    connector = connector_for(channel)
    kind = inbound.identity_kind or connector.identity_kind
    try:
        with publish.batched(), transaction.atomic():
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
                customer, identity = resolve_customer(
                    kind=kind, value=inbound.address, name=inbound.name, handle=inbound.handle
                )
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
            preview = conversations.preview(inbound.text or inbound.kind)
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
            if opened:
                send_on_commit(
                    signals.conversation_created,
                    conversation_id=conversation.pk,
                    customer_id=customer.pk,
                    team_id=conversation.team_id,
                )
            outbound.created_event(message, "inbound")
            for attachment in inbound.attachments:
                store_attachment(message=message, attachment=attachment)
            # An answer to something of ours (a satisfaction score) stays in the thread without
            # reopening it, making it wait or waking the bot (inbox.extensions: inbound holds).
            held = "" if opened or inbound.auto_reply else extensions.inbound_hold_for(conversation, message)
            if held:
                message.metadata = {**message.metadata, "held": held}
                Message.objects.filter(pk=message.pk).update(metadata=message.metadata)
            reopened = conversation.status != Conversation.Status.OPEN and not inbound.auto_reply and not held
            if reopened:
                conversation.status = Conversation.Status.OPEN
                conversation.snoozed_until = None
                conversation.resolved_at = None
                activity.record_activity(
                    conversation=conversation, action="reopened", by=None, data={"reason": "customer wrote"}
                )
                send_on_commit(signals.conversation_reopened, conversation_id=conversation.pk)
            if held:
                conversations.touch(conversation)  # its version: open threads fetch the new message
            elif not opened:  # a conversation opened here was inserted with all of this
                conversation.last_message_at = now
                conversation.last_channel = channel
                conversation.last_message_preview = preview
                if not inbound.auto_reply:
                    conversation.last_inbound_at = now
                    if conversation.waiting_since is None:
                        conversation.waiting_since = now
                conversations.touch(
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
                with publish.batched():
                    publish.message_created(message.pk)
                    publish.conversation_changed(conversation.pk)
                    signals.message_received.send(
                        sender=Message,
                        message_id=message.pk,
                        conversation_id=conversation.pk,
                        auto_reply=inbound.auto_reply,
                        held=held,
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
