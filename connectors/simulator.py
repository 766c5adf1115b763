"""The simulator: anyone can play the customer on any medium, through the real inbound path.

A simulated channel has a medium (sms, whatsapp, email, ...). Customer messages are signed JSON
posted to the channel's webhook exactly like a provider's; what Parley sends is delivered at once
(the message row is the outbox) and acknowledged by a delivery receipt that also comes back through
the inbound path. Addresses containing ``fail`` are refused for good; ``flaky`` ones fail twice
before they succeed, so retries can be watched.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from inbox.models import Channel, InboundEvent, Message
from inbox.transport import (
    Connector,
    InboundMessage,
    InvalidRequest,
    Parsed,
    PermanentError,
    SendResult,
    StatusUpdate,
    TransientError,
    register,
)

MEDIUM_IDENTITY = {
    "sms": "phone",
    "voice": "phone",
    "whatsapp": "phone",
    "email": "email",
    "telegram": "telegram",
    "viber": "viber",
    "messenger": "messenger",
    "webchat": "webchat",
}
SIGNATURE_HEADER = "X-Parley-Signature"


@register
class SimulatorConnector(Connector):
    kind = "simulator"
    label = "Simulator"
    medium = None
    endpoints = ("inbound", "status")
    secret_settings = ("secret",)
    # We deduplicate on our own message id, so a send that is retried after a crash is harmless.
    idempotent_send = True

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        self.identity_kind = MEDIUM_IDENTITY.get(channel.medium, "phone")

    @classmethod
    def medium_for(cls, channel_settings: Any) -> str:
        medium = str(channel_settings.get("medium", "sms"))
        if medium not in MEDIUM_IDENTITY:
            from inbox.transport import ConfigurationError

            raise ConfigurationError(f"unknown medium {medium!r}; one of {', '.join(MEDIUM_IDENTITY)}")
        return medium

    @classmethod
    def validate_settings(cls, channel_settings: Any) -> None:
        cls.medium_for(channel_settings)
        channel_settings.setdefault("secret", secrets.token_hex(16))

    # -- inbound ---------------------------------------------------------------------------

    def sign(self, body: bytes) -> str:
        return hmac.new(self.setting("secret").encode(), body, hashlib.sha256).hexdigest()

    def verify(self, request: HttpRequest, endpoint: str) -> None:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature or not hmac.compare_digest(signature, self.sign(request.body)):
            raise InvalidRequest("bad or missing signature", status=403)

    def dedupe_key(self, request: HttpRequest, endpoint: str) -> str:
        payload = _load(request.body)
        return f"{endpoint}:{payload.get('id') or hashlib.sha256(request.body).hexdigest()}"

    def parse(self, event: InboundEvent) -> Iterable[Parsed]:
        payload = _load(bytes(event.body))
        if event.endpoint == "status":
            yield StatusUpdate(
                provider_id=str(payload["provider_id"]),
                status=str(payload["status"]),
                reason=str(payload.get("reason", "")),
            )
            return
        address = str(payload.get("from", "")).strip()
        if not address:
            raise InvalidRequest("'from' is required")
        yield InboundMessage(
            provider_id=str(payload.get("id", "")),
            address=address,
            text=str(payload.get("text", "")),
            html=str(payload.get("html", "")),
            name=str(payload.get("name", "")),
            auto_reply=bool(payload.get("auto_reply", False)),
            metadata={"subject": payload["subject"]} if payload.get("subject") else {},
        )

    # -- outbound --------------------------------------------------------------------------

    def send(self, message: Message, address: str) -> SendResult:
        if "fail" in address or address.endswith("5550001"):
            raise PermanentError(f"The simulated {self.channel.medium} network refused {address}.")
        if "flaky" in address and message.attempts <= 2:
            raise TransientError("The simulated network timed out.", retry_after=1)
        return SendResult(provider_id=f"sim-{message.public_id}", status="sent")

    def sent(self, message: Message) -> None:
        """The simulated handset confirms delivery, through the inbound path like a provider would."""
        receipt = {"id": f"{message.provider_id}:delivered", "provider_id": message.provider_id, "status": "delivered"}
        post(self.channel, "status", json.dumps(receipt).encode())


def _load(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("expected a JSON object")
    return payload


def post(channel: Channel, endpoint: str, body: bytes) -> HttpResponse:
    """Deliver a signed request to the channel's webhook through the same view code providers hit."""
    from inbox.webhooks import webhook

    connector = SimulatorConnector(channel)
    request = RequestFactory().post(
        f"/hooks/{channel.key}/{endpoint}/",
        data=body,
        content_type="application/json",
        headers={SIGNATURE_HEADER: connector.sign(body)},
    )
    return webhook(request, key=channel.key, endpoint=endpoint)


def simulated_channel(medium: str) -> Channel:
    """The simulated channel for a medium, created on first use."""
    from inbox import services
    from inbox.models import Team

    channel = Channel.objects.filter(kind=SimulatorConnector.kind, medium=medium, is_active=True).first()
    if channel is None:
        label = dict(Channel.Medium.choices).get(medium, medium)
        channel = services.create_channel(
            kind=SimulatorConnector.kind,
            name=f"Simulated {label}",
            team=Team.objects.order_by("pk").first(),
            channel_settings={"medium": medium},
        )
    return channel


def customer_says(
    *, medium: str, address: str, text: str, name: str = "", subject: str = "", auto_reply: bool = False
) -> HttpResponse:
    """Play a customer writing to us on ``medium``. Raises ``InvalidAddress`` for a bad address."""
    from customers.services import normalise_address

    normalise_address(MEDIUM_IDENTITY[medium], address)
    channel = simulated_channel(medium)
    payload: dict[str, Any] = {"id": str(uuid.uuid4()), "from": address, "text": text, "name": name}
    if subject:
        payload["subject"] = subject
    if auto_reply:
        payload["auto_reply"] = True
    return post(channel, "inbound", json.dumps(payload).encode())


def outbox(*, to: str = "") -> list[dict[str, Any]]:
    """What Parley sent to simulated customers, oldest first."""
    messages = (
        Message.objects.filter(channel__kind=SimulatorConnector.kind, direction=Message.Direction.OUTBOUND)
        .exclude(status__in=[Message.Status.QUEUED, Message.Status.SENDING, Message.Status.FAILED])
        .select_related("channel")
        .order_by("created_at", "pk")
    )
    if to:
        messages = messages.filter(address__in=_address_forms(to))
    return [
        {
            "id": str(m.public_id),
            "medium": m.channel.medium if m.channel else "",
            "channel": m.channel.name if m.channel else "",
            "to": m.address,
            "text": m.text,
            "sender": m.sender,
            "status": m.status,
            "at": m.created_at.isoformat(),
        }
        for m in messages
    ]


def _address_forms(address: str) -> list[str]:
    from customers.services import InvalidAddress, normalise_phone

    forms = [address.strip(), address.strip().lower()]
    with contextlib.suppress(InvalidAddress):
        forms.append(normalise_phone(address))
    return forms
