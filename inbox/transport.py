"""The connector protocol and its registry.

A connector adapts one provider to Parley: it verifies a webhook request, turns the raw event into
normalised :class:`InboundMessage` and :class:`StatusUpdate` objects, sends an outbound message, and
maps provider errors to :class:`TransientError` (retry) or :class:`PermanentError` (fail with a
reason). Connectors register with :func:`register`; the core looks them up by ``Channel.kind`` and
never imports a concrete connector.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from customers.services import normalise_address

if TYPE_CHECKING:
    from inbox.models import Channel, Conversation, InboundEvent, Message

logger = logging.getLogger(__name__)


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class InvalidRequest(ConnectorError):
    """The request is not one we accept (bad signature, malformed body). Answered with a 4xx."""

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TransientError(ConnectorError):
    """Sending failed for a reason that may pass (timeout, 5xx, rate limit): retry with backoff."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """Sending can never succeed as it is (invalid number, opted out): fail with a readable reason."""

    def __init__(self, reason: str, *, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class ConfigurationError(ConnectorError):
    """A channel's settings are missing or wrong."""


class NotYet(ConnectorError):
    """An event names something of ours not stored yet: the answer to our own send, still on its way.

    Providers may call back about a message before they answer the request that sent it. The event
    is processed again a few seconds later (not with the slow backoff of a failure), a bounded
    number of times.
    """


@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    content_type: str
    content: bytes | None = None
    # Where the worker downloads the content from when the provider only sends a link.
    url: str = ""
    content_id: str = ""
    inline: bool = False


@dataclass(frozen=True)
class InboundMessage:
    """A message from a customer, normalised. ``address`` is as the provider wrote it."""

    provider_id: str
    address: str
    text: str = ""
    html: str = ""
    name: str = ""
    # The public name of ``address`` when the provider gives one (a Telegram @username): shown for
    # a new customer who has no name, instead of a provider id that means nothing to a person.
    handle: str = ""
    sent_at: datetime | None = None
    attachments: tuple[InboundAttachment, ...] = ()
    # Provider ids of earlier messages this one answers (email References, a quoted reply).
    replies_to: tuple[str, ...] = ()
    # A conversation token the customer replied to (an email plus-address, say).
    conversation_token: str = ""
    # More addresses the same person proved to own: (identity kind, value), e.g. a shared phone.
    extra_identities: tuple[tuple[str, str], ...] = ()
    # Automatic messages (out-of-office, bounces) are recorded but never answered.
    auto_reply: bool = False
    kind: str = "message"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # A digest of what the message says, for providers whose ids senders choose (an email's
    # Message-ID): the same provider id with another digest is another message, not a redelivery.
    content_digest: str = ""
    # The identity kind of ``address`` when it is not the connector's own (a WhatsApp user who
    # withholds their phone number is known by their business-scoped user id instead).
    identity_kind: str = ""


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's news about one of our outbound messages."""

    provider_id: str
    status: str  # one of sent, delivered, read, failed
    reason: str = ""
    at: datetime | None = None
    # Our own id of the message (``Message.public_id``) when the provider echoes it back (WhatsApp's
    # ``biz_opaque_callback_data``): it finds a message whose send's answer is late, or was lost.
    public_id: uuid.UUID | None = None


@dataclass(frozen=True)
class SendResult:
    provider_id: str
    status: str = "sent"


Parsed = InboundMessage | StatusUpdate


@dataclass(frozen=True)
class CheckResult:
    """One thing ``manage.py doctor`` asked a provider about a channel (``Connector.check``).

    ``detail`` says what was found when ``ok``, and what to fix when not; it never holds a secret.
    """

    what: str  # "credentials", "webhook", "IMAP", "SMTP", ...
    ok: bool
    detail: str


@dataclass(frozen=True)
class TemplateVariable:
    """A placeholder of an approved template (``{{1}}``) and where its value comes from."""

    key: str
    label: str = ""
    # Filled in from the conversation: ``customer.name``, ``customer.first_name``, ``operator.name``,
    # ``operator.first_name``, ``team.name``, ``conversation.id``; '' when the operator types it.
    fill: str = ""


@dataclass(frozen=True)
class MessageTemplate:
    """A message the provider approved in advance (a WhatsApp template), sendable outside the window."""

    key: str  # the provider's id for it (a Twilio ContentSid)
    name: str
    body: str = ""  # its approved text with ``{{1}}`` placeholders, to preview and keep in the thread
    variables: tuple[TemplateVariable, ...] = ()

    def render(self, values: Mapping[str, str]) -> str:
        """The text the customer receives, as far as we know it."""
        if not self.body:
            filled = ", ".join(values[v.key] for v in self.variables if values.get(v.key))
            return f"[{self.name}] {filled}".strip()
        text = self.body
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        return text


class Connector:
    """Base class of every connector. Subclasses set ``kind`` and implement what they support."""

    kind: ClassVar[str]
    label: ClassVar[str]
    # The identity kind a customer's address on this connector is stored as (may depend on settings).
    identity_kind: str
    # Which medium a channel of this connector is, or None when a setting decides (the simulator).
    medium: ClassVar[str | None] = None
    # Setting keys a channel must have; ``channel add`` refuses to create a channel without them.
    required_settings: ClassVar[tuple[str, ...]] = ()
    # Setting keys that are secrets: never shown in the UI or printed.
    secret_settings: ClassVar[tuple[str, ...]] = ()
    # Webhook endpoints: name -> whether it accepts provider events through the generic view.
    endpoints: ClassVar[tuple[str, ...]] = ("inbound",)
    # Whether a message can carry a "share my phone number" button (``metadata["ask_phone"]``),
    # whose answer is the customer's own, verified number (Telegram, Viber).
    asks_phone: ClassVar[bool] = False

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    # -- configuration ---------------------------------------------------------------------

    @classmethod
    def medium_for(cls, channel_settings: Mapping[str, Any]) -> str:
        if cls.medium is None:
            raise ConfigurationError(f"{cls.kind} needs a medium")
        return cls.medium

    @classmethod
    def validate_settings(cls, channel_settings: Mapping[str, Any]) -> None:
        missing = [key for key in cls.required_settings if not channel_settings.get(key)]
        if missing:
            raise ConfigurationError(f"missing settings for {cls.kind}: {', '.join(missing)}")

    def setting(self, key: str, default: str = "") -> str:
        """A channel setting; ``KEY_file`` or ``KEY_env`` name a file or variable holding a secret.

        A secret file that cannot be read (missing, unreadable, not text) is the channel's
        configuration at fault, not the request's: :class:`ConfigurationError` (a webhook answers
        503 and logs it), never an ``OSError`` that would become a 500 with a traceback.
        """
        values = self.channel.settings
        if values.get(f"{key}_file"):
            path = values[f"{key}_file"]
            try:
                with open(path, encoding="utf-8") as handle:
                    return handle.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigurationError(f"{key}_file {path} cannot be read: {exc}") from exc
        if values.get(f"{key}_env"):
            return os.environ.get(values[f"{key}_env"], default)
        return str(values.get(key, default))

    def connect(self) -> None:
        """Called once a channel is created (or switched back on): register its webhook with the
        provider, check its credentials. Raise :class:`ConfigurationError` to refuse the channel."""

    def disconnect(self) -> None:
        """Called before a channel is removed or switched off: tell the provider to stop calling."""

    def check(self) -> list[CheckResult]:
        """Ask the provider, without sending anything to anyone, whether this channel works: its
        credentials are accepted, its webhook points at us where the provider can say. An empty
        list: this connector cannot be asked (``doctor`` says so). Never raises for a refusal: a
        refusal is a failed :class:`CheckResult` naming what to fix."""
        return []

    def describe_extra(self) -> dict[str, Any]:
        """More for ``channel add``/``channel list`` to print (the website chat's embed snippet)."""
        return {}

    def webhook_paths(self) -> dict[str, str]:
        return {name: f"/hooks/{self.channel.key}/{name}/" for name in self.endpoints}

    def public_base_url(self) -> str:
        return (self.channel.settings.get("public_base_url") or settings.PUBLIC_BASE_URL).rstrip("/")

    def webhook_urls(self) -> dict[str, str]:
        base = self.public_base_url()
        return {name: base + path for name, path in self.webhook_paths().items()}

    # -- inbound ---------------------------------------------------------------------------

    def handle_webhook(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        """Verify, store, acknowledge. Connectors with synchronous protocols (voice) override."""
        from inbox.services import inbound  # a true cycle: the way in uses this protocol's types

        if endpoint not in self.endpoints:
            raise InvalidRequest("unknown endpoint", status=404)
        self.verify(request, endpoint)
        _event, _created = inbound.record_inbound_event(
            channel=self.channel,
            endpoint=endpoint,
            dedupe_key=self.dedupe_key(request, endpoint),
            body=request.body,
            headers=self.headers_to_keep(request),
            content_type=request.content_type or "",
        )
        return self.acknowledge(request, endpoint)

    def verify(self, request: HttpRequest, endpoint: str) -> None:
        """Raise :class:`InvalidRequest` unless the request provably comes from the provider."""
        raise NotImplementedError

    def dedupe_key(self, request: HttpRequest, endpoint: str) -> str:
        """The provider's id for this delivery; by default a hash of the raw body."""
        return f"{endpoint}:sha256:{hashlib.sha256(request.body).hexdigest()}"

    def headers_to_keep(self, request: HttpRequest) -> dict[str, str]:
        return {}

    def acknowledge(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        return HttpResponse(status=200)

    def parse(self, event: InboundEvent) -> Iterable[Parsed]:
        """Turn a stored raw event into normalised messages and status updates."""
        raise NotImplementedError

    def fetch_attachment(self, attachment: InboundAttachment) -> tuple[bytes, str]:
        """Download a linked attachment; returns (content, content type)."""
        raise PermanentError("this channel cannot download attachments")

    # -- outbound --------------------------------------------------------------------------

    def offers_choices(self) -> bool:
        """Whether this channel shows a message's choices as buttons the customer taps.

        **The choices contract.** An outbound message may offer choices, channel-neutrally:
        ``Message.metadata["choices"] = [{"id": "csat:5", "title": "😀 5"}, ...]`` (at most
        :data:`MAX_CHOICES`; an ``id`` of at most 64 ASCII characters, a ``title`` of at most 20
        characters, the tightest limits among the providers). A connector that offers choices
        renders them with its provider's buttons (a Telegram inline keyboard, WhatsApp interactive
        list, Messenger quick replies, a Viber keyboard, the website chat's buttons); one that does
        not sends the text alone, so whoever offers choices also writes a text that works without
        them ("Reply with a number from 1 to 5"): :func:`choices_of` and this method tell them which.
        A tap comes back through the connector's ``parse`` as an ordinary :class:`InboundMessage`
        whose ``text`` is the choice's title and whose ``metadata["choice"]`` is its ``id``.
        """
        return False

    def normalise_address(self, address: str) -> str:
        return normalise_address(self.identity_kind, address)

    def refusal(self, *, conversation: Conversation, address: str) -> str:
        """Why a free-form message cannot be sent to ``address`` now ('' when it can)."""
        return ""

    def templates(self) -> list[MessageTemplate]:
        """The approved templates this channel can send (to reach a customer outside a window)."""
        return []

    def send(self, message: Message, address: str) -> SendResult:
        raise NotImplementedError

    def sent(self, message: Message) -> None:
        """Called once the result of :meth:`send` is stored (``message.provider_id`` is set)."""


# The choices contract (Connector.offers_choices): how many, and how long an id and a title may be.
MAX_CHOICES = 10
MAX_CHOICE_ID = 64
MAX_CHOICE_TITLE = 20


def choices_of(message: Message) -> list[dict[str, str]]:
    """The well-formed choices a message offers (``metadata["choices"]``), cut to the contract's
    limits; [] when it offers none."""
    raw = (message.metadata or {}).get("choices") if isinstance(message.metadata, dict) else None
    if not isinstance(raw, list):
        return []
    choices = []
    for item in raw[:MAX_CHOICES]:
        if isinstance(item, dict) and item.get("id") and item.get("title"):
            choices.append({"id": str(item["id"])[:MAX_CHOICE_ID], "title": str(item["title"])[:MAX_CHOICE_TITLE]})
    return choices


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut at paragraph boundaries where it can
    (then at line ends, then at spaces, then anywhere): for messengers that cap one message's length."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            cut = window.rfind(separator)
            if cut > limit // 4:
                break
        if cut <= 0:
            cut = limit
        part, rest = rest[:cut].strip(), rest[cut:].strip()
        if part:
            parts.append(part)
    if rest:
        parts.append(rest)
    return parts


_registry: dict[str, type[Connector]] = {}


def register(connector: type[Connector]) -> type[Connector]:
    """Class decorator: make a connector available under its ``kind``."""
    existing = _registry.get(connector.kind)
    if existing is not None and existing is not connector:
        raise ConfigurationError(f"two connectors claim the kind {connector.kind!r}")
    _registry[connector.kind] = connector
    return connector


def connector_class(kind: str) -> type[Connector]:
    try:
        return _registry[kind]
    except KeyError:
        raise ConfigurationError(f"no connector for kind {kind!r}; known: {', '.join(sorted(_registry))}") from None


def connector_for(channel: Channel) -> Connector:
    return connector_class(channel.kind)(channel)


def kinds() -> list[str]:
    return sorted(_registry)
