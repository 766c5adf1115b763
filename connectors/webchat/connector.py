"""The ``webchat`` connector: replies go to the visitor's open tabs; the visitor fetches what they missed.

Visitors' messages do not come through webhooks: the widget's socket (or its HTTP fallback) hands
them to the core's :func:`inbox.services.receive_message` at once (step 2 of the inbound path), with
the client's message id as the dedupe key. Replies ride the outbox like every channel's: ``send``
pushes the message to the visitor's group on the channel layer and reports it ``sent``; the widget
acknowledges what it shows (``delivered``, then ``read``). A visitor who is away gets it when a tab
reconnects and asks for everything after the last id it has — by id, so never twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from connectors.webchat import push
from connectors.webchat.protocol import WIDGET_SCRIPT, message_frame, names_style, parse_origins
from inbox.models import InboundEvent, Message
from inbox.transport import (
    ConfigurationError,
    Connector,
    InvalidRequest,
    Parsed,
    SendResult,
    TransientError,
)


class WebchatConnector(Connector):
    kind = "webchat"
    label = "Website chat"
    medium = "webchat"
    identity_kind = "webchat"
    required_settings = ("allowed_origins",)
    secret_settings = ("identity_secret",)
    endpoints = ()
    # The widget shows a message once per id, however often it is pushed: a retried send is harmless.
    idempotent_send = True

    @classmethod
    def validate_settings(cls, channel_settings: Mapping[str, Any]) -> None:
        super().validate_settings(channel_settings)
        try:
            origins = parse_origins(channel_settings.get("allowed_origins", ""))
        except ValueError as exc:
            raise ConfigurationError(f"allowed_origins: {exc}") from exc
        if not origins:
            raise ConfigurationError("allowed_origins: name at least one origin, e.g. https://shop.example.com")
        mode = channel_settings.get("offline_form", "email")
        if mode not in ("email", "none"):
            raise ConfigurationError("offline_form must be 'email' or 'none'")
        if channel_settings.get("prechat_email", "off") not in ("off", "optional", "required"):
            raise ConfigurationError("prechat_email must be 'off', 'optional' or 'required'")
        minutes = str(channel_settings.get("email_after_minutes", "5"))
        if not minutes.isdigit() or not 0 <= int(minutes) <= 1440:
            raise ConfigurationError("email_after_minutes must be a number of minutes from 0 to 1440")
        if channel_settings.get("agent_names", "full") not in ("full", "first"):
            raise ConfigurationError("agent_names must be 'full' or 'first'")

    # -- what ``channel add`` prints ------------------------------------------------------------

    def script_url(self) -> str:
        return f"{self.public_base_url()}/webchat/{WIDGET_SCRIPT.rsplit('/', 1)[1]}"

    def snippet(self) -> str:
        return (
            f'<script src="{self.script_url()}" data-parley-channel="{self.channel.key}" '
            'async crossorigin="anonymous"></script>'
        )

    def describe_extra(self) -> dict[str, Any]:
        return {"snippet": self.snippet(), "script": self.script_url()}

    def files_url(self) -> str:
        """Where the visitor's attachments are, relative to Parley (the widget knows its own origin)."""
        return f"/webchat/{self.channel.key}/files/"

    # -- inbound: not through webhooks ----------------------------------------------------------

    def parse(self, event: InboundEvent) -> Iterable[Parsed]:
        raise InvalidRequest("the website chat takes no webhooks")

    # -- outbound ---------------------------------------------------------------------------------

    def offers_choices(self) -> bool:
        """Buttons under the message (``options`` of its frame); a tap sends the title with the
        choice's id (``choice`` in the widget's ``message`` frame)."""
        return True

    def send(self, message: Message, address: str) -> SendResult:
        frame = message_frame(message, files_url=self.files_url(), names=names_style(self.channel))
        try:
            push.push(self.channel.pk, address, {"type": "webchat.message", "message": frame})
        except Exception as exc:
            raise TransientError(f"The live connection to the website could not be reached: {exc}") from exc
        return SendResult(provider_id=f"webchat-{message.public_id}", status="sent")

    def sent(self, message: Message) -> None:
        from connectors.webchat.services import apply_early_ack

        apply_early_ack(message=message)
