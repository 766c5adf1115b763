"""What the websocket and the HTTP fallback share: visitor tokens, origins, limits and frames.

The protocol itself is documented in docs/connectors/webchat.md; this module holds its rules.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing

from inbox.models import Attachment, Channel, Message, Operator
from inbox.transport import choices_of

PROTOCOL_VERSION = 1
# The widget's script is served under a versioned name (static/webchat/parley-webchat.<version>.js)
# and cached for a year: a new script is a new name.
WIDGET_VERSION = "1.2.0"
WIDGET_SCRIPT = f"webchat/parley-webchat.{WIDGET_VERSION}.js"

TOKEN_SALT = "parley.webchat.visitor"  # noqa: S105 - a namespace for signing, not a secret
# A client's id for a message: a UUID, or any short token of letters, digits, '-' and '_'.
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
VISITOR_ID = re.compile(r"^v-[A-Za-z0-9_-]{22}$")
LANGUAGES = ("en", "ru", "uk", "fa")


class ProtocolError(Exception):
    """A frame or request the protocol refuses; ``code`` is for the widget, ``detail`` for people."""

    def __init__(self, code: str, detail: str, *, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.retry_after = retry_after

    def frame(self, **extra: Any) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "error", "code": self.code, "detail": self.detail, **extra}
        if self.retry_after is not None:
            frame["retry_after"] = self.retry_after
        return frame


# -- limits ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    text_chars: int
    frame_bytes: int
    upload_bytes: int
    messages_per_minute: int  # per visitor
    address_messages_per_minute: int  # per network address, all its visitors together
    visitors_per_minute: int  # new visitors (tokens) per network address


def limits() -> Limits:
    return Limits(
        text_chars=settings.PARLEY_WEBCHAT_TEXT_CHARS,
        frame_bytes=settings.PARLEY_WEBCHAT_TEXT_CHARS * 4 + 2048,
        upload_bytes=settings.PARLEY_WEBCHAT_UPLOAD_BYTES,
        messages_per_minute=settings.PARLEY_WEBCHAT_MESSAGES_PER_MINUTE,
        address_messages_per_minute=settings.PARLEY_WEBCHAT_ADDRESS_MESSAGES_PER_MINUTE,
        visitors_per_minute=settings.PARLEY_WEBCHAT_VISITORS_PER_MINUTE,
    )


# Attachments a visitor may send: images the widget previews, and common documents.
UPLOAD_TYPES = {
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
}


# -- visitor tokens -------------------------------------------------------------------------------


def new_visitor_id() -> str:
    """An opaque, unguessable visitor id (128 random bits)."""
    return "v-" + secrets.token_urlsafe(16)


def visitor_token(channel: Channel, visitor: str) -> str:
    """The signed token a browser keeps for ``visitor`` on ``channel`` (valid on that channel only)."""
    return signing.dumps({"c": channel.pk, "v": visitor}, salt=TOKEN_SALT, compress=False)


def read_token(channel: Channel, token: Any) -> str | None:
    """The visitor a token names, or None when it is missing, forged or another channel's."""
    if not isinstance(token, str) or not token or len(token) > 200:
        return None
    try:
        data = signing.loads(token, salt=TOKEN_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("c") != channel.pk:
        return None
    visitor = data.get("v")
    return visitor if isinstance(visitor, str) and VISITOR_ID.match(visitor) else None


def visitor_group(channel_id: int, visitor: str) -> str:
    """The channel-layer group of one visitor's open tabs (never an operators' group)."""
    return f"webchat.{channel_id}.{visitor}"


def client_id(value: Any) -> str:
    if not isinstance(value, str) or not CLIENT_ID.match(value):
        raise ProtocolError("bad_client_id", "client_msg_id must be 8 to 64 letters, digits, '-' or '_'.")
    return value


def provider_id(visitor: str, client_msg_id: str) -> str:
    """A visitor message's dedupe key: the client's id, scoped to its visitor."""
    return f"{visitor}:{client_msg_id}"


def new_client_id() -> str:
    return str(uuid.uuid4())


# -- origins --------------------------------------------------------------------------------------


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, the way browsers send ``Origin``; raises ValueError."""
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(f"not an origin (scheme://host[:port]): {value!r}")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def parse_origins(value: Any) -> list[str]:
    """The channel's ``allowed_origins`` setting: a comma- or space-separated string, or a list."""
    items: Iterable[Any] = value if isinstance(value, list | tuple) else re.split(r"[,\s]+", str(value or ""))
    return [normalise_origin(str(item)) for item in items if str(item).strip()]


def origin_allowed(channel: Channel, origin: str | None) -> bool:
    if not origin:
        return False
    try:
        wanted = normalise_origin(origin)
    except ValueError:
        return False
    try:
        return wanted in parse_origins(channel.settings.get("allowed_origins", ""))
    except ValueError:
        return False


# -- identity -------------------------------------------------------------------------------------


def user_hash(secret: str, value: str) -> str:
    """What a site computes on its server for ``Parley.identify``: HMAC-SHA256 hex of the user id (or email)."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()


def hash_matches(secret: str, value: str, given: Any) -> bool:
    if not secret or not value or not isinstance(given, str):
        return False
    return hmac.compare_digest(user_hash(secret, value), given.strip().lower())


# -- frames ---------------------------------------------------------------------------------------


def language(value: Any) -> str:
    code = str(value or "").strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else "en"


def attachment_token(attachment_id: int, visitor: str) -> str:
    """A capability for one attachment of one visitor's conversation (an ``<img src>`` has no headers)."""
    return signing.Signer(salt=TOKEN_SALT + ".file").sign(f"{attachment_id}.{visitor}")


def read_attachment_token(value: str) -> tuple[int, str] | None:
    try:
        raw = signing.Signer(salt=TOKEN_SALT + ".file").unsign(value)
    except signing.BadSignature:
        return None
    pk, _, visitor = raw.partition(".")
    return (int(pk), visitor) if pk.isdigit() and VISITOR_ID.match(visitor) else None


# The id of a tapped button (inbox.transport's choices contract: at most 64 characters).
CHOICE_ID = re.compile(r"^[\w:.\-]{1,64}$")
_OFFER = re.compile(r"^\s*([12\u06f1\u06f2])[.)]\s+(.+?)\s*$", re.MULTILINE)


def bot_options(message: Message) -> list[dict[str, str]]:
    """The bot's "did you mean 1. A or 2. B?" as buttons: a label and the reply the bot understands."""
    about = message.metadata.get("bot") or {}
    if message.sender != Message.Sender.BOT or about.get("action") != "clarify":
        return []
    found = _OFFER.findall(message.text)
    return [{"label": label[:200], "reply": digit} for digit, label in found[:2]] if len(found) >= 2 else []


def operator_name(operator: Operator, style: str = "full") -> str:
    """An operator as visitors see them: their display name, or only its first word (the channel's
    ``agent_names = first``: some teams do not show surnames to the public)."""
    name = str(operator.display_name or operator.get_full_name() or operator.first_name or operator.username)
    if style == "first":
        words = name.split()
        return words[0] if words else name
    return name


def names_style(channel: Channel) -> str:
    """The channel's ``agent_names``: ``full`` (default) or ``first``."""
    return "first" if channel.settings.get("agent_names") == "first" else "full"


def agent_name(message: Message, style: str = "full") -> str:
    """The name a visitor sees on an operator's message ('' for the bot and the system)."""
    if message.sender != Message.Sender.OPERATOR or message.author is None:
        return ""
    return operator_name(message.author, style)


JOINED = "assigned"  # the activity that shows as "Alice joined" in the widget


def joined_frame(entry: Message, operator: Operator | None, style: str = "full") -> dict[str, Any]:
    """An operator taking the conversation, as a system line of the widget ("Alice joined")."""
    return {
        "id": entry.pk,
        "from": "system",
        "event": "joined",
        "name": operator_name(operator, style) if operator is not None else "",
        "text": "",
        "at": entry.created_at.isoformat(),
    }


def message_frame(
    message: Message, *, files_url: str = "", names: str = "full", attachments: list[Attachment] | None = None
) -> dict[str, Any]:
    """A message as the widget shows it. Never HTML: the widget renders text (and links) itself.

    ``attachments``: the message's, when the caller knows them (a text frame has none: no query).
    """
    if message.kind == Message.Kind.ACTIVITY:
        to = message.metadata.get("to")
        operator = Operator.objects.filter(pk=to).first() if isinstance(to, int) else None
        return joined_frame(message, operator, names)
    inbound = message.direction == Message.Direction.INBOUND
    if inbound:
        sender = "visitor"
    elif message.sender == Message.Sender.BOT:
        sender = "bot"
    else:
        sender = "agent"
    name = agent_name(message, names)
    frame: dict[str, Any] = {
        "id": message.pk,
        "from": sender,
        "name": name,
        "text": message.text,
        "at": message.created_at.isoformat(),
    }
    if inbound and ":" in message.provider_id:
        frame["client_msg_id"] = message.provider_id.split(":", 1)[1]
    if not inbound:
        frame["status"] = message.status
        options = bot_options(message) or [
            # The choices contract (inbox.transport): a button whose reply is the title and whose
            # tap comes back with the choice's id.
            {"label": choice["title"], "reply": choice["title"], "choice": choice["id"]}
            for choice in choices_of(message)
        ]
        if options:
            frame["options"] = options
    if attachments is None:
        attachments = list(message.attachments.all())
    if attachments:
        frame["attachments"] = [
            {
                "id": a.pk,
                "name": a.filename,
                "type": a.content_type,
                "size": a.size,
                "url": f"{files_url}{attachment_token(a.pk, message.address)}/" if files_url else "",
            }
            for a in attachments
        ]
    return frame


def now() -> int:
    return int(time.time())
