"""The simulator: play a customer on any medium, through the real inbound path (demo and development).

A simulated channel has a medium (sms, whatsapp, email, ...). Customer messages are signed JSON
posted to the channel's webhook exactly like a provider's; what Parley sends is delivered at once
(the message row is the outbox) and acknowledged by a delivery receipt that also comes back through
the inbound path. Addresses containing ``fail`` are refused for good; ``flaky`` ones fail twice
before they succeed, so retries can be watched.

Safety (docs/security.md, "The simulator"):

- it is off in production mode unless ``PARLEY_SIMULATOR=1``: then no simulated channel can be
  created, its webhooks answer 404, and the page and the ``simulate`` command refuse;
- simulated channels are made by the demo data, ``channel add simulator`` or the ``simulate``
  command, never by a web request;
- it speaks only for customers it created: an address new to Parley, or one whose customer has
  written only through simulated channels (:func:`refusal`). A real customer's address is refused
  before anything is posted, and again when the event is processed (``parse``), so a simulated
  message never lands in a real customer's conversation and never becomes their reply channel;
- an operator (not staff) plays customers only on their own teams' simulated channels, and only
  customers with no conversation of another team; the outbox shows them their teams' conversations.
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

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.utils.translation import gettext as _

from customers.models import Identity
from customers.services import InvalidAddress, normalise_address, normalise_phone
from inbox.models import Channel, Conversation, InboundEvent, Message, Operator, Team
from inbox.services import channels
from inbox.transport import (
    ConfigurationError,
    Connector,
    InboundMessage,
    InvalidRequest,
    Parsed,
    PermanentError,
    SendResult,
    StatusUpdate,
    TransientError,
    choices_of,
    register,
)
from inbox.views.webhooks import webhook

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
# The media whose real channels show an outbound message's choices as buttons (transport contract).
MEDIA_WITH_BUTTONS = frozenset({"whatsapp", "telegram", "viber", "messenger", "webchat"})


def enabled() -> bool:
    """The simulator is on: ``PARLEY_SIMULATOR`` (on by default, off in production mode)."""
    return bool(settings.PARLEY_SIMULATOR)


OFF = "The simulator is off (production mode turns it off; PARLEY_SIMULATOR=1 switches it on)."


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

    def offers_choices(self) -> bool:
        """As the real channel of its medium: buttons on the messengers and the website chat, the
        text alone on SMS, email and voice."""
        return self.channel.medium in MEDIA_WITH_BUTTONS

    @classmethod
    def medium_for(cls, channel_settings: Any) -> str:
        medium = str(channel_settings.get("medium", "sms"))
        if medium not in MEDIUM_IDENTITY:
            raise ConfigurationError(f"unknown medium {medium!r}; one of {', '.join(MEDIUM_IDENTITY)}")
        return medium

    @classmethod
    def validate_settings(cls, channel_settings: Any) -> None:
        if not enabled():
            raise ConfigurationError(OFF)
        cls.medium_for(channel_settings)
        channel_settings.setdefault("secret", secrets.token_hex(16))

    # -- inbound ---------------------------------------------------------------------------

    def sign(self, body: bytes) -> str:
        return hmac.new(self.setting("secret").encode(), body, hashlib.sha256).hexdigest()

    def verify(self, request: HttpRequest, endpoint: str) -> None:
        if not enabled():
            raise InvalidRequest(OFF, status=404)
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
        # customer_says refused it already; this catches a customer who became real meanwhile, and
        # any other signed post. The event then fails for good, with the reason, for admins to see.
        reason = refusal(channel=self.channel, address=address)
        if reason:
            raise InvalidRequest(reason)
        yield InboundMessage(
            provider_id=str(payload.get("id", "")),
            address=address,
            text=str(payload.get("text", "")),
            html=str(payload.get("html", "")),
            name=str(payload.get("name", "")),
            auto_reply=bool(payload.get("auto_reply", False)),
            metadata={
                **({"subject": payload["subject"]} if payload.get("subject") else {}),
                # A tapped button (the choices contract), where the medium has buttons.
                **({"choice": str(payload["choice"])[:64]} if payload.get("choice") and self.offers_choices() else {}),
            },
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

    connector = SimulatorConnector(channel)
    request = RequestFactory().post(
        f"/hooks/{channel.key}/{endpoint}/",
        data=body,
        content_type="application/json",
        headers={SIGNATURE_HEADER: connector.sign(body)},
    )
    return webhook(request, key=channel.key, endpoint=endpoint)


# -- who the simulator may speak for ------------------------------------------------------------


def refusal(*, channel: Channel, address: str, operator: Operator | None = None) -> str:
    """Why the simulator will not play ``address`` on ``channel`` ("" when it may).

    It plays only customers it created: an address new to Parley, or one whose customer has
    written only through simulated channels (a customer added by hand, imported, or who ever wrote
    on a real channel is a real person). An ``operator`` who is not staff plays only customers who
    have no conversation of another team. Raises ``InvalidAddress`` for an address that is not
    one on the channel's medium.
    """

    kind = MEDIUM_IDENTITY.get(channel.medium, "phone")
    identity = Identity.objects.filter(kind=kind, value=normalise_address(kind, address)).first()
    if identity is None:
        return ""
    history = Message.objects.filter(customer_id=identity.customer_id, channel__isnull=False)
    simulated = Q(channel__kind=SimulatorConnector.kind)
    if history.exclude(simulated).exists() or not history.filter(simulated).exists():
        return _("This address belongs to a real customer: the simulator speaks only for customers it created.")
    if operator is not None and not operator.is_staff:
        theirs = Conversation.objects.filter(customer_id=identity.customer_id)
        if theirs.exclude(team_id__in=operator.team_ids).exists():
            return _("This address belongs to a customer of another team.")
    return ""


def channels_for(operator: Operator) -> QuerySet[Channel]:
    """The active simulated channels an operator may play customers on: their teams' (all for staff)."""
    return (
        Channel.objects.visible_to(operator)
        .filter(kind=SimulatorConnector.kind, is_active=True)
        .select_related("team")
        .order_by("name", "pk")
    )


def simulated_channel(medium: str) -> Channel:
    """The simulated channel for a medium, created on first use (for the command and the demo data,
    never for a web request: the page offers only channels that exist)."""

    channel = Channel.objects.filter(kind=SimulatorConnector.kind, medium=medium, is_active=True).first()
    if channel is None:
        label = dict(Channel.Medium.choices).get(medium, medium)
        channel = channels.create_channel(
            kind=SimulatorConnector.kind,
            name=f"Simulated {label}",
            team=Team.objects.order_by("pk").first(),
            channel_settings={"medium": medium},
        )
    return channel


def customer_says(
    *,
    medium: str = "",
    channel: Channel | None = None,
    address: str,
    text: str,
    name: str = "",
    subject: str = "",
    auto_reply: bool = False,
    choice: str = "",
) -> HttpResponse:
    """Play a customer writing to us on ``channel`` (or the simulated channel of ``medium``, made on
    first use); ``choice`` taps a button a message offered (its id; ``text`` is then its title). Raises ``InvalidAddress`` for a bad address. Answers the webhook's response, or a
    403 with the reason, without posting, for an address the simulator may not play (:func:`refusal`)."""
    if channel is None:
        channel = simulated_channel(medium)
    reason = refusal(channel=channel, address=address)
    if reason:
        return HttpResponse(reason, status=403, content_type="text/plain; charset=utf-8")
    payload: dict[str, Any] = {"id": str(uuid.uuid4()), "from": address, "text": text, "name": name}
    if subject:
        payload["subject"] = subject
    if auto_reply:
        payload["auto_reply"] = True
    if choice:
        payload["choice"] = choice
    return post(channel, "inbound", json.dumps(payload).encode())


def outbox(*, to: str = "", operator: Operator | None = None) -> list[dict[str, Any]]:
    """What Parley sent to simulated customers, oldest first; only to the conversations ``operator``
    may see when one is given (their teams'; all for staff)."""
    messages = (
        Message.objects.filter(channel__kind=SimulatorConnector.kind, direction=Message.Direction.OUTBOUND)
        .exclude(
            status__in=[
                Message.Status.QUEUED,
                Message.Status.SENDING,
                Message.Status.FAILED,
                # Send later: not sent (yet, or ever).
                Message.Status.SCHEDULED,
                Message.Status.CANCELLED,
            ]
        )
        .select_related("channel")
        .order_by("created_at", "pk")
    )
    if operator is not None:
        messages = messages.filter(conversation__in=Conversation.objects.visible_to(operator))
    if to:
        messages = messages.filter(address__in=_address_forms(to))
    return [
        {
            "id": str(m.public_id),
            "medium": m.channel.medium if m.channel else "",
            "channel": m.channel.name if m.channel else "",
            "channel_id": m.channel_id,
            "to": m.address,
            "text": m.text,
            "sender": m.sender,
            **({"choices": choices_of(m)} if choices_of(m) else {}),
            "status": m.status,
            "at": m.created_at.isoformat(),
        }
        for m in messages
    ]


def _address_forms(address: str) -> list[str]:

    forms = [address.strip(), address.strip().lower()]
    with contextlib.suppress(InvalidAddress):
        forms.append(normalise_phone(address))
    return forms
