"""A visitor's session, the same over the websocket and the HTTP fallback: who they are, what they get.

The functions are synchronous; :class:`Session` is the async state machine both transports drive.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.utils import timezone

from connectors.webchat import fallback, protocol, ratelimit, selectors, services
from connectors.webchat.connector import WebchatConnector
from connectors.webchat.protocol import ProtocolError
from inbox import assistant
from inbox.models import Channel, Conversation, Operator
from inbox.realtime import publish


def open_visitor(*, channel: Channel, token: Any, address: str) -> tuple[str, str, bool]:
    """(visitor, token, new) for a hello: the token's visitor, or a new one (limited per address).

    A missing, forged or other channel's token gets a new visitor: it can never read anyone's
    conversation.
    """
    visitor = protocol.read_token(channel, token)
    if visitor is not None:
        return visitor, str(token), False
    ratelimit.hit("new_visitor", address, protocol.limits().visitors_per_minute)
    visitor = protocol.new_visitor_id()
    return visitor, protocol.visitor_token(channel, visitor), True


def resume_point(value: Any) -> int | None:
    """``after`` of a hello or a poll: None asks for the latest history, a number resumes above it."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ProtocolError("bad_after", "after must be the id of the last message the widget has.")
    try:
        after = int(value)
    except ValueError as exc:
        raise ProtocolError("bad_after", "after must be the id of the last message the widget has.") from exc
    if after < 0:
        raise ProtocolError("bad_after", "after must be the id of the last message the widget has.")
    return after


HAVE_MAX = 200  # ids a widget may list in a resume


def message_ids(value: Any, *, limit: int = HAVE_MAX) -> frozenset[int]:
    """A list of message ids from the widget (``have``, ``ids``)."""
    if value is None:
        return frozenset()
    if not isinstance(value, list) or len(value) > limit:
        raise ProtocolError("bad_ids", f"ids must be a list of at most {limit} message ids.")
    if not all(isinstance(item, int) and not isinstance(item, bool) and item > 0 for item in value):
        raise ProtocolError("bad_ids", "ids must be message ids.")
    return frozenset(value)


def frames(
    *, channel: Channel, visitor: str, after: int | None, have: frozenset[int] = frozenset()
) -> list[dict[str, Any]]:
    files_url = WebchatConnector(channel).files_url()
    names = protocol.names_style(channel)
    return [
        protocol.message_frame(message, files_url=files_url, names=names)
        for message in selectors.visitor_messages(channel=channel, visitor=visitor, after=after, have=have)
    ]


def agents_online(channel: Channel) -> bool:
    operators = Operator.objects.filter(is_active=True, presence=Operator.Presence.ONLINE)
    if channel.team_id is not None:
        operators = operators.filter(teams=channel.team_id)
    return operators.exists()


MAILBOX_CACHE_SECONDS = 5.0
_mailboxes: dict[int, tuple[float, bool]] = {}


def has_mailbox(channel: Channel) -> bool:
    """Whether the channel's team has an email channel for replies by email (kept briefly: every hello asks)."""
    now = time.monotonic()
    cached = _mailboxes.get(channel.pk)
    if cached is not None and cached[0] > now:
        return cached[1]
    found = fallback.email_channel_for(channel) is not None
    _mailboxes[channel.pk] = (now + MAILBOX_CACHE_SECONDS, found)
    return found


def forget_mailboxes() -> None:
    _mailboxes.clear()
    _hours.clear()


# The team's hours, kept briefly per process too. Not only to spare the bot's cache lookup: Django's
# cache handler is context-local under ASGI, so a hello that touches ``django.core.cache`` leaves a
# Redis client of its own in its socket's context for the socket's whole life (measured: about 10 KB
# per idle visitor's socket, bench.widget at 1 000 visitors). Only the hello that refreshes this does.
HOURS_CACHE_SECONDS = 5.0
_hours: dict[int | None, tuple[float, assistant.Hours]] = {}


def team_hours(channel: Channel) -> assistant.Hours:
    now = time.monotonic()
    cached = _hours.get(channel.team_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    hours = assistant.team_hours(team_id=channel.team_id, at=timezone.now())
    _hours[channel.team_id] = (now + HOURS_CACHE_SECONDS, hours)
    return hours


def welcome(
    *, channel: Channel, visitor: str, token: str, new: bool, after: int | None, have: frozenset[int] = frozenset()
) -> dict[str, Any]:
    """The answer to a hello: the visitor's token, what they missed, and how the widget should behave."""
    limits = protocol.limits()
    # A form that promises an email answer only where a team's mailbox can send one.
    by_email = has_mailbox(channel)
    hours = team_hours(channel)
    return {
        "type": "welcome",
        "protocol": protocol.PROTOCOL_VERSION,
        "token": token,
        "new": new,
        "messages": [] if new else frames(channel=channel, visitor=visitor, after=after, have=have),
        "online": hours.open and agents_online(channel),
        # Outside business hours the widget says when people are back (the bot still answers).
        "hours": {"open": hours.open, "back": hours.back.isoformat() if hours.back else None},
        "settings": {
            "title": str(channel.settings.get("title", "")) or channel.name,
            "offline_form": channel.settings.get("offline_form", "email") if by_email else "none",
            "prechat_email": channel.settings.get("prechat_email", "off") if by_email else "off",
            "text_chars": limits.text_chars,
            "upload_bytes": limits.upload_bytes,
            "upload_types": sorted(protocol.UPLOAD_TYPES),
        },
    }


def open_conversation(visitor: str) -> tuple[int, str] | None:
    """(id, the customer's name as operators see it) of the visitor's open conversation, if any."""
    customer_id = selectors.visitor_customer_id(visitor)
    if customer_id is None:
        return None
    conversation = Conversation.objects.filter(customer_id=customer_id).open().select_related("customer").first()
    return (conversation.pk, conversation.customer.display_name) if conversation is not None else None


def client_address(scope_client: Any, forwarded_for: str = "") -> str:
    """The visitor's network address for limits: the first ``X-Forwarded-For`` hop behind a proxy."""
    from django.conf import settings

    if settings.SECURE_PROXY_SSL_HEADER and forwarded_for:
        return forwarded_for.split(",")[0].strip()[:64]
    if isinstance(scope_client, list | tuple) and scope_client:
        return str(scope_client[0])[:64]
    return "unknown"


TYPING_EVERY = 2.0  # seconds between typing notices from one tab
TYPING_PER_MINUTE = 40  # typing notices from one visitor, all tabs and transports together
SEEN_PER_MINUTE = 120  # delivered/read receipts from one visitor
CONVERSATION_FRESH = 30.0  # seconds a session trusts the open conversation it looked up for typing


# Visitors' messages are stored by a few threads of their own, not the one thread every consumer's
# database work shares: storing one is a handful of round trips, and waiting for them one message
# at a time capped a web process at some 30 messages a second on a busy machine. Each socket still
# awaits its own messages one by one, so a tab's messages keep their order. The threads live as
# long as the process (database_sync_to_async returns their connections after each call).
STORE_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="parley-webchat-store")


def _receive(*, files_url: str, **fields: Any) -> tuple[dict[str, Any], bool]:
    """Store a visitor's message and frame it, in one trip to a worker thread: (frame, whether new)."""
    received = services.receive_visitor_message(**fields)
    # A socket's message is text only (files go through the upload endpoint): no attachments query.
    frame = protocol.message_frame(received.message, files_url=files_url, attachments=[])
    return frame, not received.duplicate


class Session:
    """One visitor's conversation with the server, whatever carries the frames (socket or HTTP).

    Each ``on_*`` method takes a frame from the widget and returns the frame to answer with (or
    None); a refusal is a :class:`ProtocolError`, answered as an ``error`` frame or a 4xx.
    """

    def __init__(self, channel: Channel, address: str, visitor: str | None = None) -> None:
        self.channel = channel
        self.address = address
        self.visitor = visitor
        self.typing_at = 0.0
        self.conversation: tuple[float, tuple[int, str] | None] = (0.0, None)
        self.files_url = WebchatConnector(channel).files_url()
        self.have: frozenset[int] = frozenset()
        self.locale = ""
        self.page = ""

    async def on_hello(
        self, content: dict[str, Any], joined: Callable[[str], Awaitable[None]] | None = None
    ) -> dict[str, Any]:
        if self.visitor is not None:
            raise ProtocolError("hello_again", "This socket said hello already.")
        after = resume_point(content.get("after"))
        have = message_ids(content.get("have"))
        self.locale = str(content.get("locale") or "")[:16]
        self.page = str(content.get("page") or "")[:500]
        visitor, token, new = await database_sync_to_async(open_visitor)(
            channel=self.channel, token=content.get("token"), address=self.address
        )
        if joined is not None:
            # Join before reading what was missed: a message sent meanwhile comes live (once, by id).
            await joined(visitor)
        self.visitor = visitor
        frame: dict[str, Any] = await database_sync_to_async(welcome)(
            channel=self.channel, visitor=visitor, token=token, new=new, after=after, have=have
        )
        self.have = have
        return frame

    def _visitor(self) -> str:
        if self.visitor is None:
            raise ProtocolError("hello_first", "Say hello (with the visitor token) first.", status=401)
        return self.visitor

    async def on_message(self, content: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The ack (carrying the stored message) and whether the message is new."""
        visitor = self._visitor()
        client_msg_id = protocol.client_id(content.get("client_msg_id"))
        limits = protocol.limits()
        await ratelimit.ahit("visitor", visitor, limits.messages_per_minute)
        await ratelimit.ahit("address", self.address, limits.address_messages_per_minute)
        frame, new = await DatabaseSyncToAsync(_receive, thread_sensitive=False, executor=STORE_THREADS)(
            channel=self.channel,
            visitor=visitor,
            client_msg_id=client_msg_id,
            text=content.get("text", ""),
            page_url=content.get("page") or self.page,
            locale=content.get("locale") or self.locale,
            choice=content.get("choice") or "",
            files_url=self.files_url,
        )
        ack = {"type": "ack", "client_msg_id": client_msg_id, "id": frame["id"], "message": frame}
        return ack, new

    async def on_typing(self) -> None:
        visitor = self._visitor()
        now = time.monotonic()
        if now - self.typing_at < TYPING_EVERY:
            return
        self.typing_at = now
        try:
            await ratelimit.ahit("typing", visitor, TYPING_PER_MINUTE)
        except ProtocolError:
            return  # a notice that did not go out is no loss
        checked, conversation = self.conversation
        if now - checked > CONVERSATION_FRESH:
            conversation = await database_sync_to_async(open_conversation)(visitor)
            self.conversation = (now, conversation)
        if conversation is not None:
            # Operator id 0 is nobody: every operator looking at the conversation sees it.
            await publish.typing(conversation_id=conversation[0], operator_id=0, name=conversation[1])

    async def on_seen(self, content: dict[str, Any]) -> None:
        visitor = self._visitor()
        ids = message_ids(content.get("ids"), limit=100)
        try:
            await ratelimit.ahit("seen", visitor, SEEN_PER_MINUTE)
        except ProtocolError:
            return  # a receipt that did not count only leaves a tick behind
        if ids:
            await database_sync_to_async(services.mark_seen)(
                channel=self.channel, visitor=visitor, ids=ids, status=str(content.get("type"))
            )

    async def on_identify(self, content: dict[str, Any]) -> dict[str, Any]:
        visitor = self._visitor()
        await ratelimit.ahit("visitor", visitor, protocol.limits().messages_per_minute)
        verified = await database_sync_to_async(services.identify_visitor)(
            channel=self.channel,
            visitor=visitor,
            email=content.get("email"),
            name=content.get("name"),
            user_id=content.get("user_id"),
            given_hash=content.get("user_hash"),
        )
        return {"type": "identified", "verified": verified}

    async def on_frame(
        self, content: dict[str, Any], joined: Callable[[str], Awaitable[None]] | None = None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Any frame: (the answer, a message frame to show in the visitor's other tabs)."""
        kind = content.get("type")
        if kind == "ping":
            return {"type": "pong"}, None
        if kind == "hello":
            return await self.on_hello(content, joined), None
        self._visitor()
        if kind == "message":
            ack, new = await self.on_message(content)
            return ack, ack["message"] if new else None
        if kind == "typing":
            await self.on_typing()
            return None, None
        if kind in ("delivered", "read"):
            await self.on_seen(content)
            return None, None
        if kind == "identify":
            return await self.on_identify(content), None
        raise ProtocolError("unknown_type", f"Unknown frame type {str(kind)[:40]!r}.")


def files_url(channel: Channel) -> str:
    return WebchatConnector(channel).files_url()
