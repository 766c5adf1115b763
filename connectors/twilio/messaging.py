"""Twilio Programmable Messaging: SMS/MMS and WhatsApp through Twilio (docs/connectors/twilio.md).

Inbound messages and status callbacks are verified, stored raw and acknowledged with empty TwiML by
the core's webhook path; the worker parses them here. Replies go out through the official client,
whose base URL is a channel setting so a local stand-in can serve it.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from twilio.base.exceptions import TwilioRestException

from connectors.twilio import errors
from connectors.twilio.common import TwilioConnector, media_allowed
from inbox.models import Conversation, InboundEvent, Message, OptOut
from inbox.services import conversations
from inbox.transport import (
    CheckResult,
    ConfigurationError,
    InboundAttachment,
    InboundMessage,
    InvalidRequest,
    MessageTemplate,
    Parsed,
    PermanentError,
    SendResult,
    StatusUpdate,
    TemplateVariable,
    TransientError,
    register,
)

WHATSAPP_WINDOW = timedelta(hours=24)
# Twilio's default opt-out keywords (Advanced Opt-Out sends ``OptOutType`` as well).
STOP_WORDS = frozenset({"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
START_WORDS = frozenset({"START", "YES", "UNSTOP", "OPTIN"})
HELP_WORDS = frozenset({"HELP", "INFO"})
# Twilio statuses -> ours. Statuses before "sent" are not news: the send itself recorded "sent".
STATUS_MAP = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
GEO_FIELDS = ("FromCity", "FromState", "FromZip", "FromCountry")
MAX_MEDIA_BYTES = 5 * 1024 * 1024  # Twilio's cap on one message's media (docs/connectors/twilio.md)
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def parse_templates(channel_settings: Any) -> list[MessageTemplate]:
    """The channel's approved templates from its settings.

    ``templates`` is a JSON list (a string from ``channel add --set``, or a list in the admin) of
    ``{"content_sid": "HX…", "name": "Follow-up", "body": "Hi {{1}}, …", "variables": {"1": …}}``,
    where a variable is where its value comes from (``"customer.first_name"``, '' to ask the
    operator) or ``{"label": "Order number", "fill": ""}``. The older single ``template_content_sid``
    (with ``template_name`` and ``template_body``) still counts as one template.
    """
    raw = channel_settings.get("templates") or []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"templates is not valid JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise ConfigurationError("templates must be a JSON list")
    specs = [item for item in raw if isinstance(item, dict)]
    if channel_settings.get("template_content_sid") and not any(
        s.get("content_sid") == channel_settings["template_content_sid"] for s in specs
    ):
        specs.append(
            {
                "content_sid": channel_settings["template_content_sid"],
                "name": channel_settings.get("template_name") or _("Approved template"),
                "body": channel_settings.get("template_body", ""),
                "variables": channel_settings.get("template_variables") or {},
            }
        )
    templates = []
    for spec in specs:
        sid = str(spec.get("content_sid", "")).strip()
        if not sid.startswith("HX"):
            raise ConfigurationError(f"template {spec.get('name', '')!r}: content_sid must be an HX… Content SID")
        body = str(spec.get("body", ""))
        declared = spec.get("variables") or {}
        if isinstance(declared, str):
            try:
                declared = json.loads(declared)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"template {spec.get('name', '')!r}: variables is not JSON") from exc
        if isinstance(declared, list):  # [{"key": "1", "label": …, "fill": …}, …]
            declared = {str(item.get("key", "")): item for item in declared if isinstance(item, dict)}
        if not isinstance(declared, dict):
            raise ConfigurationError(f"template {spec.get('name', '')!r}: variables must be an object")
        keys = list(dict.fromkeys([*PLACEHOLDER.findall(body), *(str(k) for k in declared)]))
        variables = []
        for key in keys:
            value = declared.get(key, "")
            if isinstance(value, dict):
                variables.append(
                    TemplateVariable(key=key, label=str(value.get("label", "")), fill=str(value.get("fill", "")))
                )
            else:
                variables.append(TemplateVariable(key=key, fill=str(value or "")))
        templates.append(
            MessageTemplate(key=sid, name=str(spec.get("name") or sid), body=body, variables=tuple(variables))
        )
    return templates


def opt_keyword(body: str, opt_out_type: str = "") -> str:
    """'stop', 'start', 'help' or '' for an inbound text (a keyword alone on the message)."""
    declared = opt_out_type.strip().upper()
    word = declared or " ".join(body.strip().strip(".!").upper().split())
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return ""


def _form(event: InboundEvent) -> dict[str, str]:
    body = bytes(event.body)
    if event.content_type.startswith("application/json"):
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequest(f"not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise InvalidRequest("expected a JSON object")
        return {str(k): str(v) for k, v in payload.items()}
    try:
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("body is not UTF-8") from exc
    return {key: values[-1] for key, values in pairs.items()}


class TwilioMessagingConnector(TwilioConnector):
    endpoints = ("inbound", "status", "media")
    prefix: ClassVar[str] = ""
    # A retried send first asks Twilio whether the earlier attempt went out (:meth:`_already_sent`),
    # so the outbox sweeper may safely send a message again whose outcome it does not know.
    idempotent_send = True

    @classmethod
    def missing_settings(cls, channel_settings: Any) -> list[str]:
        parse_templates(channel_settings)  # a malformed template list is refused when the channel is added
        if channel_settings.get("from_number") or channel_settings.get("messaging_service_sid"):
            return []
        return ["from_number or messaging_service_sid"]

    def templates(self) -> list[MessageTemplate]:
        return parse_templates(self.channel.settings)

    def webhook_paths(self) -> dict[str, str]:
        return {name: f"/hooks/{self.channel.key}/{name}/" for name in ("inbound", "status")}

    # -- inbound ---------------------------------------------------------------------------

    def handle_webhook(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        if endpoint == "media":
            return self.serve_media(request)
        return super().handle_webhook(request, endpoint)

    def dedupe_key(self, request: HttpRequest, endpoint: str) -> str:
        data: Any = request.POST
        if (request.content_type or "").startswith("application/json"):
            try:
                data = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise InvalidRequest("not JSON") from None
            if not isinstance(data, dict):
                raise InvalidRequest("expected a JSON object")
        sid = str(data.get("MessageSid") or data.get("SmsSid") or "")
        if not sid:
            raise InvalidRequest("MessageSid is missing")
        if endpoint == "status":
            return f"status:{sid}:{data.get('MessageStatus') or data.get('SmsStatus') or ''}"
        return f"{endpoint}:{sid}"

    def parse(self, event: InboundEvent) -> Iterable[Parsed]:
        form = _form(event)
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        if not sid:
            raise InvalidRequest("MessageSid is missing")
        if event.endpoint == "status":
            yield from self._status(sid, form)
            return
        if event.endpoint != "inbound":
            raise InvalidRequest(f"unknown endpoint {event.endpoint}")
        address = form.get("From", "").strip()
        if not address:
            raise InvalidRequest("From is missing")
        yield self._message(sid, address, form)

    def _status(self, sid: str, form: dict[str, str]) -> Iterable[StatusUpdate]:
        twilio_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
        status = STATUS_MAP.get(twilio_status)
        if status is None:
            return
        reason = ""
        if status == "failed":
            reason = (
                errors.describe(form.get("ErrorCode"), form.get("ErrorMessage", ""))
                if form.get("ErrorCode")
                else _("Twilio reported the message as %(status)s.") % {"status": twilio_status}
            )
        yield StatusUpdate(provider_id=sid, status=status, reason=reason)

    def _message(self, sid: str, address: str, form: dict[str, str]) -> InboundMessage:
        attachments, skipped = [], []
        count = int(form.get("NumMedia") or 0) if (form.get("NumMedia") or "0").isdigit() else 0
        for index in range(min(count, 10)):
            url = form.get(f"MediaUrl{index}", "")
            content_type = form.get(f"MediaContentType{index}", "application/octet-stream")
            if not url:
                continue
            if not media_allowed(content_type):
                skipped.append({"url": url, "content_type": content_type})
                continue
            media_sid = url.rstrip("/").rsplit("/", 1)[-1]
            extension = mimetypes.guess_extension(content_type.split(";")[0]) or ""
            attachments.append(
                InboundAttachment(filename=f"{media_sid}{extension}", content_type=content_type, url=url)
            )
        text = form.get("Body", "")
        if not text and form.get("Latitude") and form.get("Longitude"):
            place = " ".join(filter(None, [form.get("Label", ""), form.get("Address", "")]))
            text = _("Shared a location: %(place)s %(lat)s, %(lon)s") % {
                "place": place,
                "lat": form["Latitude"],
                "lon": form["Longitude"],
            }
        details: dict[str, Any] = {
            key: form[key]
            for key in (
                "MessagingServiceSid",
                "NumSegments",
                "WaId",
                "ProfileName",
                "ButtonText",
                "ButtonPayload",
                "Latitude",
                "Longitude",
                "Forwarded",
                "FrequentlyForwarded",
                *GEO_FIELDS,
            )
            if form.get(key)
        }
        if skipped:
            details["skipped_media"] = skipped
        metadata: dict[str, Any] = {"twilio": details}
        keyword = opt_keyword(text, form.get("OptOutType", ""))
        if keyword:
            metadata["opt_keyword"] = keyword
        replied = form.get("OriginalRepliedMessageSid", "")
        return InboundMessage(
            provider_id=sid,
            address=address,
            text=text,
            name=form.get("ProfileName", ""),
            attachments=tuple(attachments),
            replies_to=(replied,) if replied else (),
            metadata=metadata,
        )

    # -- outbound --------------------------------------------------------------------------

    def address_for_twilio(self, address: str) -> str:
        return f"{self.prefix}{address}" if self.prefix and not address.startswith(self.prefix) else address

    def send(self, message: Message, address: str) -> SendResult:
        if OptOut.objects.filter(channel=self.channel, customer_id=message.customer_id).exists():
            # They wrote STOP after this message was queued (or while it waited for a retry).
            raise PermanentError(_("The customer opted out of %(channel)s.") % {"channel": self.channel.name})
        client = self.client()
        to = self.address_for_twilio(address)
        if message.attempts > 1:
            # An earlier attempt may have reached Twilio even though we saw a timeout or a 5xx:
            # adopt that message instead of sending a second copy.
            earlier = self._already_sent(client, message, to)
            if earlier:
                return SendResult(provider_id=earlier, status="sent")
        params = self._send_params(message, to)
        try:
            created = client.messages.create(**params)
        except TwilioRestException as exc:
            error = self.rest_error(client, exc)
            if isinstance(error, PermanentError) and str(exc.code) == str(errors.OPTED_OUT):
                self._record_opt_out(message)
            raise error from exc
        except Exception as exc:  # requests' timeouts and connection errors
            raise TransientError(_("Twilio could not be reached: %(error)s") % {"error": type(exc).__name__}) from exc
        if created.error_code:
            raise errors.classify(status=None, code=created.error_code, message=created.error_message or "")
        if not created.sid:
            raise TransientError(_("Twilio answered without a message id."))
        return SendResult(provider_id=str(created.sid), status="sent")

    def _send_params(self, message: Message, to: str) -> dict[str, Any]:
        params: dict[str, Any] = {"to": to, "status_callback": self.webhook_urls()["status"]}
        service = self.setting("messaging_service_sid")
        if service:
            params["messaging_service_sid"] = service
        else:
            params["from_"] = self.address_for_twilio(self.setting("from_number"))
        template = message.metadata.get("template")
        if template:
            spec = template if isinstance(template, dict) else {}
            content_sid = str(spec.get("content_sid") or spec.get("key") or self.setting("template_content_sid"))
            if not content_sid:
                raise PermanentError(_("This channel has no approved template (template_content_sid)."))
            params["content_sid"] = content_sid
            if spec.get("variables"):
                params["content_variables"] = json.dumps(spec["variables"])
            return params
        if message.text:
            params["body"] = message.text
        files = list(message.attachments.all())
        media = [self.media_url(a) for a in files]
        if sum(a.size for a in files) > MAX_MEDIA_BYTES:
            raise PermanentError(_("Twilio takes at most 5 MB of attachments per message; send smaller files."))
        if media:
            limit = 1 if self.prefix == "whatsapp:" else 10
            if len(media) > limit:
                raise PermanentError(
                    _("%(channel)s carries at most %(n)s attachment(s) per message.")
                    % {"channel": self.channel.name, "n": limit}
                )
            params["media_url"] = media
        return params

    def _already_sent(self, client: Any, message: Message, to: str) -> str:
        try:
            recent = client.messages.list(to=to, limit=20)
        except Exception:
            # Unknown: better a visible retry than a silent duplicate; try again later.
            raise TransientError(_("Could not check with Twilio whether the last attempt went out.")) from None
        since = message.created_at - timedelta(minutes=1)
        ours = set(
            Message.objects.filter(channel=self.channel, customer_id=message.customer_id, direction="out")
            .exclude(provider_id="")
            .values_list("provider_id", flat=True)
        )
        media = message.attachments.count()
        for candidate in recent:
            created = getattr(candidate, "date_created", None)
            body = candidate.body or ""
            if (created is not None and created < since) or str(candidate.sid) in ours:
                continue
            if message.text and body.endswith(message.text):
                return str(candidate.sid)
            # Twilio renders a template's text itself, and a picture alone has no text to compare:
            # any message of ours to this address since, not yet claimed by another row, is this one.
            if message.metadata.get("template") or (
                not message.text and media and str(candidate.num_media) == str(media)
            ):
                return str(candidate.sid)
        return ""

    def _record_opt_out(self, message: Message) -> None:

        conversations.opt_out(channel=self.channel, customer=message.customer, reason="Twilio 21610 (STOP)")


@register
class TwilioSmsConnector(TwilioMessagingConnector):
    kind = "twilio-sms"
    label = "Twilio SMS/MMS"
    medium = "sms"

    def check_more(self, client: Any) -> list[CheckResult]:
        """The sending number is one of the account's, and Twilio sends its messages to us."""
        number = self.setting("from_number")
        if not number:
            return []  # a Messaging Service sends: its numbers and URLs are set on the service
        try:
            found = client.incoming_phone_numbers.list(phone_number=number, limit=1)
        except Exception as exc:
            return [CheckResult("number", False, f"Twilio did not list the account's numbers: {exc}")]
        if not found:
            return [CheckResult("number", False, f"{number} is not a phone number of this Twilio account")]
        expected = self.webhook_urls()["inbound"]
        configured = str(found[0].sms_url or "")
        if configured.split("#")[0] != expected.split("#")[0]:
            return [
                CheckResult("number", True, f"{number} belongs to the account"),
                CheckResult(
                    "webhook",
                    False,
                    f"{number} sends incoming messages to {configured or 'nowhere'}; set its "
                    f"'A message comes in' URL to {expected}",
                ),
            ]
        return [
            CheckResult("number", True, f"{number} belongs to the account"),
            CheckResult("webhook", True, f"incoming messages go to {expected}"),
        ]


@register
class TwilioWhatsAppConnector(TwilioMessagingConnector):
    kind = "twilio-whatsapp"
    label = "WhatsApp (Twilio)"
    medium = "whatsapp"
    prefix = "whatsapp:"

    def refusal(self, *, conversation: Conversation, address: str) -> str:
        """Free-form messages go out only within 24 hours of the customer's last WhatsApp message."""
        last = (
            Message.objects.filter(
                channel=self.channel,
                customer_id=conversation.customer_id,
                direction=Message.Direction.INBOUND,
                kind=Message.Kind.MESSAGE,
            )
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if last is not None and timezone.now() - last < WHATSAPP_WINDOW:
            return ""
        reason = _(
            "The customer last wrote on WhatsApp more than 24 hours ago; WhatsApp only allows an approved template now."
        )
        if self.templates():
            return (
                reason + " " + _("Send one of the channel's approved templates instead, or reply on another channel.")
            )
        return reason + " " + _("Reply on another channel, or configure an approved template on this channel.")
