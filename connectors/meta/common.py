"""What the three Meta connectors share: settings, the handshake, the signature, splitting and
routing a callback, the Graph API client and the 24-hour window.

One Meta app has one callback URL, and may serve several WhatsApp numbers, Pages and Instagram
accounts: a callback that reaches one channel's URL is split into its events, and each is stored on
the channel its ``phone_number_id`` / Page id / Instagram account id names — a channel of the same
Meta app (the same app secret, which signed the callback). Events for an id no channel has are
stored on the receiving channel and fail visibly ("no channel for …"), never silently dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from connectors.meta import callbacks
from connectors.meta.graph import DEFAULT_BASE_URL, DEFAULT_VERSION, Graph
from inbox.models import Channel, Conversation, InboundEvent, Message
from inbox.services import inbound
from inbox.transport import (
    CheckResult,
    ConfigurationError,
    Connector,
    ConnectorError,
    InvalidRequest,
    Parsed,
    connector_class,
    kinds,
)

logger = logging.getLogger(__name__)

WEBHOOK = "webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"
STANDARD_WINDOW = timedelta(hours=24)
MAX_CHALLENGE = 200
VERSION_RE = re.compile(r"^v\d{1,3}\.\d{1,3}$")


def signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256``'s value for a body: ``sha256=`` and the hex HMAC-SHA256 with the app secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def unix_time(value: Any, *, milliseconds: bool = False) -> datetime | None:
    try:
        seconds = float(value) / (1000 if milliseconds else 1)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds > 0 else None


class MetaConnector(Connector):
    """Shared behaviour; subclasses set the object type, the routing id and the token's name."""

    endpoints: ClassVar[tuple[str, ...]] = (WEBHOOK,)
    object_type: ClassVar[str]
    route_setting: ClassVar[str]
    credential_setting: ClassVar[str]
    # One message per send for idempotency's sake: Meta has no idempotency key, so a send whose
    # outcome is unknown is failed visibly rather than repeated (see Graph.call's ``sends``).
    idempotent_send = False

    # -- configuration ---------------------------------------------------------------------

    @classmethod
    def validate_settings(cls, channel_settings: Mapping[str, Any]) -> None:
        values: Any = channel_settings
        problems = []
        if not str(values.get(cls.route_setting, "")).strip():
            problems.append(cls.route_setting)
        for key in (cls.credential_setting, "app_secret"):
            if not any(values.get(k) for k in (key, f"{key}_env", f"{key}_file")):
                problems.append(f"{key} (or {key}_env / {key}_file)")
        if problems:
            raise ConfigurationError(f"missing settings for {cls.kind}: {', '.join(problems)}")
        base = str(values.get("graph_base_url", "") or DEFAULT_BASE_URL)
        if urlsplit(base).scheme not in ("http", "https"):
            raise ConfigurationError("graph_base_url must be an http(s) URL")
        version = str(values.get("graph_version", "") or DEFAULT_VERSION)
        if not VERSION_RE.match(version):
            raise ConfigurationError(f"graph_version must look like {DEFAULT_VERSION}, not {version!r}")
        if values.get("http_timeout") and not re.fullmatch(r"\d+(\.\d+)?", str(values["http_timeout"])):
            raise ConfigurationError("http_timeout is a number of seconds")
        # What Meta's app dashboard asks for when the callback URL is saved: ours unless one is given.
        if isinstance(values, dict) and not str(values.get("verify_token", "")).strip():
            values["verify_token"] = secrets.token_urlsafe(24)

    @property
    def route_id(self) -> str:
        return str(self.channel.settings.get(self.route_setting, "")).strip()

    def graph(self) -> Graph:
        token = self.setting(self.credential_setting)
        if not token:
            raise ConfigurationError(f"channel {self.channel.pk} has no {self.credential_setting}")
        return Graph(
            base_url=self.setting("graph_base_url") or DEFAULT_BASE_URL,
            version=self.setting("graph_version") or DEFAULT_VERSION,
            token=token,
            timeout=float(self.setting("http_timeout") or 10),
        )

    def check(self) -> list[CheckResult]:
        """``GET /{phone_number_id}`` (or the page, the Instagram account) with the channel's token:
        the token is valid and reaches the object the channel routes by. Meta's webhook subscription
        belongs to the app (an app token, not the channel's), so it is not asked here."""
        try:
            found = self.graph().call("GET", self.route_id)
        except ConnectorError as exc:
            reason = getattr(exc, "reason", str(exc))
            detail = f"Meta refused GET /{self.route_id} with the channel's {self.credential_setting}: {reason}"
            return [CheckResult("credentials", False, detail)]
        name = found.get("verified_name") or found.get("display_phone_number") or found.get("name") or found.get("id")
        return [CheckResult("credentials", True, f"{self.route_setting} {self.route_id} is {name!s}")]

    def app_secret(self) -> str:
        secret = self.setting("app_secret")
        if not secret:
            raise ConfigurationError(f"channel {self.channel.pk} has no app_secret")
        return secret

    # -- the webhook -----------------------------------------------------------------------

    def handle_webhook(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        if endpoint not in self.endpoints:
            raise InvalidRequest("unknown endpoint", status=404)
        if request.method == "GET":
            return self.handshake(request)
        if request.method != "POST":
            raise InvalidRequest("Meta posts its events here", status=405)
        self.verify(request, endpoint)
        try:
            payload = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidRequest("the body is not JSON") from None
        items = callbacks.split(payload)
        self.record(items, callback_sha256=hashlib.sha256(request.body).hexdigest())
        return HttpResponse("EVENT_RECEIVED", content_type="text/plain")

    def handshake(self, request: HttpRequest) -> HttpResponse:
        """Meta's verification request when the callback URL is saved: echo the challenge or 403."""
        mode = request.GET.get("hub.mode", "")
        token = request.GET.get("hub.verify_token", "")
        challenge = request.GET.get("hub.challenge", "")
        expected = str(self.channel.settings.get("verify_token", ""))
        if mode != "subscribe" or not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise InvalidRequest("verification refused: wrong hub.mode or hub.verify_token", status=403)
        if not challenge or len(challenge) > MAX_CHALLENGE:
            raise InvalidRequest("hub.challenge is missing or too long")
        return HttpResponse(challenge, content_type="text/plain; charset=utf-8")

    def verify(self, request: HttpRequest, endpoint: str) -> None:
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not given:
            raise InvalidRequest(f"missing {SIGNATURE_HEADER}", status=403)
        expected = signature(self.app_secret(), request.body)
        if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
            raise InvalidRequest(f"bad {SIGNATURE_HEADER}", status=403)

    def record(self, items: list[callbacks.Item], *, callback_sha256: str) -> None:
        """Store each item once on the channel it is for (this one when none is)."""
        by_channel: dict[int, tuple[Channel, list[inbound.RawEvent]]] = {}
        targets: dict[tuple[str, str], Channel] = {}
        headers = {"callback_sha256": callback_sha256, "callback_items": str(len(items))}
        for item in items:
            where = (item.object_type, item.route)
            if where not in targets:
                targets[where] = self.target(item.object_type, item.route)
            channel = targets[where]
            raw = inbound.RawEvent(dedupe_key=item.dedupe_key, body=item.encoded(), headers=headers)
            by_channel.setdefault(channel.pk, (channel, []))[1].append(raw)
        for channel, events in by_channel.values():
            if len(events) == 1:
                inbound.record_inbound_event(
                    channel=channel,
                    endpoint=WEBHOOK,
                    dedupe_key=events[0].dedupe_key,
                    body=events[0].body,
                    headers=events[0].headers,
                    content_type="application/json",
                )
            else:
                inbound.record_inbound_events(
                    channel=channel, endpoint=WEBHOOK, events=events, content_type="application/json"
                )

    def target(self, object_type: str, route: str) -> Channel:
        """The channel an event is for: this one, or another of the same Meta app; else this one."""
        if not route or (object_type == self.object_type and route == self.route_id):
            return self.channel
        kind = next((k for k in meta_kinds() if meta_class(k).object_type == object_type), None)
        if kind is None:
            return self.channel
        setting = meta_class(kind).route_setting
        candidates = Channel.objects.filter(kind=kind, is_active=True).filter(
            Q(**{f"settings__{setting}": route})
            | Q(**{f"settings__{setting}": int(route) if route.isdigit() else route})
        )
        mine = self.app_secret().encode()
        for candidate in candidates:
            other = meta_class(kind)(candidate)
            try:
                if hmac.compare_digest(other.app_secret().encode(), mine):
                    return candidate
            except ConfigurationError:
                continue
        logger.warning(
            "Meta callback on channel %s names %s %s, which no channel of this app has", self.channel.pk, setting, route
        )
        return self.channel

    # -- processing ------------------------------------------------------------------------

    def parse(self, event: InboundEvent) -> Iterable[Parsed]:
        try:
            item = json.loads(bytes(event.body))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequest(f"not JSON: {exc}") from exc
        if not isinstance(item, dict):
            raise InvalidRequest("expected a JSON object")
        if item.get("problem"):
            raise InvalidRequest(str(item["problem"]))
        object_type, route = str(item.get("object", "")), str(item.get("route", ""))
        if object_type != self.object_type or (route and route != self.route_id):
            setting = next(
                (meta_class(k).route_setting for k in meta_kinds() if meta_class(k).object_type == object_type),
                "id",
            )
            raise InvalidRequest(
                f"no channel of this Meta app has {setting} {route}: add one (channel add) and Meta's next events reach it"
            )
        return self.parse_item(item)

    def parse_item(self, item: dict[str, Any]) -> Iterable[Parsed]:
        raise NotImplementedError

    # -- the window ------------------------------------------------------------------------

    def last_customer_message_at(self, customer_id: int) -> datetime | None:
        return (
            Message.objects.filter(
                channel=self.channel,
                customer_id=customer_id,
                direction=Message.Direction.INBOUND,
                kind=Message.Kind.MESSAGE,
            )
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )

    def within(self, conversation: Conversation, window: timedelta) -> bool:
        last = self.last_customer_message_at(conversation.customer_id)
        return last is not None and timezone.now() - last < window

    def pending_send_to(self, address: str) -> bool:
        """Whether a message of ours to ``address`` is on its way (its provider id not stored yet)."""
        return Message.objects.filter(
            channel=self.channel,
            address=address,
            direction=Message.Direction.OUTBOUND,
            status__in=[Message.Status.QUEUED, Message.Status.SENDING],
        ).exists()


def meta_class(kind: str) -> type[MetaConnector]:
    found = connector_class(kind)
    assert issubclass(found, MetaConnector)  # noqa: S101 - meta_kinds() names only these
    return found


def meta_kinds() -> list[str]:
    """The Meta connectors' kinds that are registered."""
    return [kind for kind in ("whatsapp-cloud", "messenger", "instagram") if kind in kinds()]
