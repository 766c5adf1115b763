"""Viber through the REST Bot API (docs/connectors/viber.md).

In: Viber POSTs callbacks to ``/hooks/<key>/inbound/`` signed with ``X-Viber-Content-Signature``
(hex HMAC-SHA256 of the raw body, keyed with the bot's auth token; compared in constant time). The
core stores each once (dedupe on event + ``message_token``, an int64 kept exact) and the worker
parses it here: messages of every type (media downloaded at once, Viber's links expire), a phone
number shared through our ``share-phone`` button, subscriptions, and delivery receipts. Out:
``send_message`` with the channel's sender name, media by our signed, expiring link
(``/hooks/<key>/media/``), and Viber's status codes sorted into transient and permanent failures.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import mimetypes
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _

from customers.models import Identity
from inbox.models import Attachment, InboundEvent, Message
from inbox.services import conversations, outbound
from inbox.transport import (
    MAX_CHOICE_ID,
    CheckResult,
    ConfigurationError,
    Connector,
    InboundAttachment,
    InboundMessage,
    InvalidRequest,
    Parsed,
    PermanentError,
    SendResult,
    StatusUpdate,
    TransientError,
    choices_of,
    register,
    split_text,
)

logger = logging.getLogger(__name__)

API_BASE_URL = "https://chatapi.viber.com/pa"
SIGNATURE_HEADER = "X-Viber-Content-Signature"
AUTH_HEADER = "X-Viber-Auth-Token"
EVENT_TYPES = ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]
MAX_TEXT = 7000
MAX_SENDER_NAME = 28
MAX_PICTURE = 1024 * 1024  # the smallest cap (iOS): larger pictures go as files
PICTURE_TYPES = ("image/jpeg", "image/png", "image/gif")
MAX_FILE = 50 * 1024 * 1024
MEDIA_LINK_MAX_AGE = 2 * 24 * 3600
# What our share-phone keyboard puts in ``tracking_data``; Viber echoes it on the customer's answer.
SHARE_PHONE = "parley:share-phone"
# What our choices keyboard puts in ``tracking_data`` (then the JSON of id -> title): a tapped
# "reply" button sends its ActionBody (the choice's id) as the customer's text, with this echoed.
CHOICES_TRACKING = "parley:choices:"
STATUS_EVENTS = {"delivered": "delivered", "seen": "read", "failed": "failed"}
# A receipt for a message we do not know is retried this long (our send may not be recorded yet).
UNKNOWN_RECEIPT_GRACE = timedelta(minutes=2)

TRANSIENT_STATUSES = frozenset({12})
UNREACHABLE_STATUSES = frozenset({5, 6})
CONFIGURATION_STATUSES = frozenset({2, 7, 8, 9, 10})


def _reason(status: int, message: str) -> str:
    reasons = {
        1: _("Viber refused the webhook URL (it must be HTTPS with a CA-signed certificate)."),
        2: _("Viber refused the channel's auth token."),
        3: _("Viber refused the message as malformed (%(detail)s).") % {"detail": message},
        4: _("Viber says the message misses a field (%(detail)s).") % {"detail": message},
        5: _("The customer is not a Viber user any more (receiverNotRegistered)."),
        6: _("The customer unsubscribed from the bot on Viber; they can be reached again once they write."),
        7: _("The bot is blocked on Viber."),
        8: _("Viber does not know the bot."),
        9: _("The bot is suspended on Viber."),
        10: _("No webhook is set for the bot on Viber."),
        11: _("The customer has no device that can show this message."),
        12: _("Viber is rate limiting the bot; the message will be retried."),
        13: _("The customer's Viber app is too old for this message."),
    }
    return reasons.get(status) or _("Viber refused the message: %(detail)s (status %(status)s)") % {
        "detail": message,
        "status": status,
    }


def _load(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)  # Python's json keeps int64 message tokens exact
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("expected a JSON object")
    if not isinstance(payload.get("event"), str):
        raise InvalidRequest("the callback has no event")
    return payload


def _request_payload(request: HttpRequest) -> dict[str, Any]:
    """The callback's JSON, parsed once per request (the webhook path reads it up to three times)."""
    cached = getattr(request, "_viber_payload", None)
    if cached is None:
        cached = _load(request.body)
        request._viber_payload = cached  # type: ignore[attr-defined]
    return cached


def _token(payload: dict[str, Any]) -> str:
    value = payload.get("message_token")
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        return ""
    return str(value)


def signature(body: bytes, token: str) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


@register
class ViberConnector(Connector):
    kind = "viber"
    label = "Viber"
    medium = "viber"
    identity_kind = "viber"
    asks_phone = True
    secret_settings: ClassVar[tuple[str, ...]] = ("auth_token",)
    endpoints: ClassVar[tuple[str, ...]] = ("inbound", "media")

    # -- configuration ---------------------------------------------------------------------

    @classmethod
    def validate_settings(cls, channel_settings: Any) -> None:
        problems = []
        if not any(channel_settings.get(k) for k in ("auth_token", "auth_token_file", "auth_token_env")):
            problems.append("auth_token (or auth_token_file / auth_token_env)")
        if not str(channel_settings.get("sender_name") or "").strip():
            problems.append("sender_name")
        if problems:
            raise ConfigurationError(f"missing settings for viber: {', '.join(problems)}")
        if len(str(channel_settings["sender_name"])) > MAX_SENDER_NAME:
            raise ConfigurationError(f"sender_name is at most {MAX_SENDER_NAME} characters")
        base = str(channel_settings.get("api_base_url") or API_BASE_URL)
        if urlsplit(base).scheme not in ("http", "https"):
            raise ConfigurationError("api_base_url must be an http(s) URL")

    def auth_token(self) -> str:
        token = self.setting("auth_token")
        if not token:
            raise ConfigurationError(f"channel {self.channel.pk} has no Viber auth token")
        return token

    def webhook_paths(self) -> dict[str, str]:
        return {"inbound": f"/hooks/{self.channel.key}/inbound/"}

    def call(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST one API method; returns the answer when its status is 0.

        Raises :class:`TransientError` (timeouts, 5xx, ``tooManyRequests``), :class:`ConfigurationError`
        (a refused token, a blocked bot) or :class:`PermanentError` with a readable reason.
        """
        url = f"{(self.setting('api_base_url') or API_BASE_URL).rstrip('/')}/{method}"
        try:
            with httpx.Client(timeout=float(self.setting("http_timeout") or 10)) as http:
                response = http.post(url, json=payload, headers={AUTH_HEADER: self.auth_token()})
        except httpx.HTTPError as exc:
            raise TransientError(_("Viber could not be reached: %(error)s") % {"error": type(exc).__name__}) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(_("Viber answered HTTP %(status)s.") % {"status": response.status_code})
        try:
            answer = response.json()
        except ValueError:
            raise TransientError(
                _("Viber answered HTTP %(status)s without JSON.") % {"status": response.status_code}
            ) from None
        if not isinstance(answer, dict):
            raise PermanentError(_("Viber's answer is not a JSON object."))
        status = answer.get("status")
        if status == 0:
            return answer
        code = int(status) if isinstance(status, int) else -1
        reason = _reason(code, str(answer.get("status_message") or ""))
        if code in TRANSIENT_STATUSES:
            raise TransientError(reason, retry_after=60.0)
        if code in CONFIGURATION_STATUSES:
            raise ConfigurationError(reason)
        raise PermanentError(reason, code=str(code))

    def connect(self) -> None:
        """``set_webhook``: Viber calls the URL at once (a signed ``webhook`` event) and answers 0
        only when we answered it 200."""
        try:
            self.call(
                "set_webhook",
                {
                    "url": self.webhook_urls()["inbound"],
                    "event_types": EVENT_TYPES,
                    "send_name": True,
                    "send_photo": False,
                },
            )
        except (TransientError, PermanentError) as exc:
            raise ConfigurationError(f"Viber refused the webhook: {exc.reason}") from exc

    def check(self) -> list[CheckResult]:
        """``get_account_info``: the token is accepted, and the account's webhook is ours."""
        try:
            info = self.call("get_account_info", {})
        except (ConfigurationError, TransientError, PermanentError) as exc:
            reason = getattr(exc, "reason", str(exc))
            return [CheckResult("credentials", False, f"Viber refused get_account_info: {reason}; check auth_token")]
        results = [CheckResult("credentials", True, f"bot {info.get('name', '?')!r} ({info.get('uri', '?')})")]
        expected = self.webhook_urls()["inbound"]
        url = str(info.get("webhook") or "")
        if url != expected:
            detail = f"Viber calls {url or 'no webhook'}, not {expected}: reconnect the channel"
            return [*results, CheckResult("webhook", False, detail)]
        return [*results, CheckResult("webhook", True, url)]

    def disconnect(self) -> None:
        try:
            self.call("set_webhook", {"url": ""})
        except (TransientError, PermanentError, ConfigurationError) as exc:
            logger.warning("could not remove the Viber webhook of channel %s: %s", self.channel.pk, exc)

    # -- inbound ---------------------------------------------------------------------------

    def handle_webhook(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        if endpoint == "media":
            return self.serve_media(request)
        if endpoint == "inbound" and request.method != "POST":
            raise InvalidRequest("callbacks are POSTed", status=405)
        if endpoint == "inbound":
            self.verify(request, endpoint)
            if _request_payload(request)["event"] == "webhook":
                return HttpResponse(status=200)  # set_webhook's check: nothing to store
        return super().handle_webhook(request, endpoint)

    def verify(self, request: HttpRequest, endpoint: str) -> None:
        given = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
        expected = signature(request.body, self.auth_token())
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise InvalidRequest(f"bad or missing {SIGNATURE_HEADER}", status=403)

    def dedupe_key(self, request: HttpRequest, endpoint: str) -> str:
        payload = _request_payload(request)
        token = _token(payload)
        if not token:
            return super().dedupe_key(request, endpoint)
        return f"{payload['event']}:{token}"

    def acknowledge(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        """Answer ``conversation_started`` with the channel's welcome message, when it has one."""
        welcome = str(self.channel.settings.get("welcome_message") or "").strip()
        if welcome and _request_payload(request)["event"] == "conversation_started":
            return JsonResponse({"sender": self.sender(), "type": "text", "text": welcome[:MAX_TEXT]})
        return HttpResponse(status=200)

    def parse(self, event: InboundEvent) -> Iterable[Parsed]:
        payload = _load(bytes(event.body))
        kind = payload["event"]
        token = _token(payload)
        if kind in STATUS_EVENTS:
            if not token:
                raise InvalidRequest(f"a {kind} callback without message_token")
            if not self._knows(token) and timezone.now() - event.received_at > UNKNOWN_RECEIPT_GRACE:
                # Not ours (a welcome message, a broadcast from elsewhere): recorded, not applied.
                logger.info("viber %s for unknown message %s on channel %s ignored", kind, token, self.channel.pk)
                return
            reason = ""
            if kind == "failed":
                reason = _("Viber could not deliver the message: %(desc)s") % {
                    "desc": payload.get("desc") or _("no reason given")
                }
            yield StatusUpdate(provider_id=token, status=STATUS_EVENTS[kind], reason=reason)
            return
        if kind in ("subscribed", "unsubscribed"):
            self._subscription(payload, subscribed=kind == "subscribed")
            return
        if kind in ("conversation_started", "webhook", "client_status", "action"):
            logger.info("viber %s on channel %s recorded", kind, self.channel.pk)
            return
        if kind != "message":
            raise InvalidRequest(f"unsupported Viber event: {kind}")
        if not token:
            raise InvalidRequest("a message callback without message_token")
        yield self._message(token, payload)

    def _knows(self, token: str) -> bool:
        return Message.objects.filter(channel=self.channel, provider_id=token, direction="out").exists()

    def _subscription(self, payload: dict[str, Any], *, subscribed: bool) -> None:

        user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
        user_id = str(payload.get("user_id") or (user or {}).get("id") or "")
        identity = Identity.objects.select_related("customer").filter(kind="viber", value=user_id).first()
        if identity is None:
            return  # nobody we have talked to
        if subscribed:
            conversations.opt_in(channel=self.channel, customer=identity.customer)
        else:
            conversations.opt_out(
                channel=self.channel, customer=identity.customer, reason=_("Unsubscribed from the bot on Viber")
            )

    def _message(self, token: str, payload: dict[str, Any]) -> InboundMessage:
        sender = payload.get("sender")
        body = payload.get("message")
        if not isinstance(sender, dict) or not sender.get("id") or not isinstance(body, dict):
            raise InvalidRequest("a message callback needs sender.id and message")
        details = {k: sender[k] for k in ("language", "country", "api_version") if sender.get(k) is not None}
        metadata: dict[str, Any] = {"viber": {"message_token": token, "type": body.get("type"), **details}}
        kind = str(body.get("type") or "")
        text = str(body.get("text") or "")
        attachments: list[InboundAttachment] = []
        skipped: list[dict[str, Any]] = []
        limit = settings.PARLEY_MAX_ATTACHMENT_BYTES
        media = str(body.get("media") or "")
        if kind in ("picture", "video", "file", "sticker") and media:
            defaults = {
                "picture": ("image/jpeg", ".jpg"),
                "video": ("video/mp4", ".mp4"),
                "file": ("application/octet-stream", ""),
                "sticker": ("image/png", ".png"),
            }
            content_type, extension = defaults[kind]
            name = str(body.get("file_name") or f"{kind}-{token}{extension}")
            content_type = mimetypes.guess_type(name)[0] or content_type
            size = body.get("size")
            if isinstance(size, int) and size > limit:
                skipped.append(
                    {
                        "filename": name,
                        "reason": _("larger than %(limit)s bytes (%(size)s)") % {"limit": limit, "size": size},
                    }
                )
            else:
                attachments.append(InboundAttachment(filename=name, content_type=content_type, url=media))
        if kind == "sticker":
            metadata["sticker"] = {"id": body.get("sticker_id")}
            text = text or _("[sticker]")
        elif kind == "url":
            text = text or media
        elif kind == "location" and isinstance(body.get("location"), dict):
            location = body["location"]
            text = _("Shared a location: %(place)s %(lat)s, %(lon)s") % {
                "place": location.get("address") or "",
                "lat": location.get("lat"),
                "lon": location.get("lon"),
            }
            metadata["location"] = {"lat": location.get("lat"), "lon": location.get("lon")}
        elif kind == "contact" and isinstance(body.get("contact"), dict):
            contact = body["contact"]
            phone = str(contact.get("phone_number") or "")
            # Viber names no owner on a contact: it is the customer's own number only when it
            # answers our share-phone button (whose tracking data Viber echoes).
            own = body.get("tracking_data") == SHARE_PHONE
            if phone:
                metadata["shared_phone"] = {"phone": phone, "verified": own, "name": str(contact.get("name") or "")}
            if own:
                text = _("Shared their phone number: %(phone)s") % {"phone": phone}
            else:
                text = _("Shared a contact: %(name)s %(phone)s") % {"name": contact.get("name") or "", "phone": phone}
        tracking = str(body.get("tracking_data") or "")
        if kind == "text" and tracking.startswith(CHOICES_TRACKING):
            try:
                offered = json.loads(tracking.removeprefix(CHOICES_TRACKING))
            except ValueError:
                offered = {}
            if isinstance(offered, dict) and text in offered:
                metadata["choice"] = text[:MAX_CHOICE_ID]
                text = str(offered[text])
        if not text and not attachments and not skipped:
            text = _("[A Viber message this inbox cannot show: %(type)s]") % {"type": kind or "?"}
        if skipped:
            metadata["skipped_attachments"] = skipped
        return InboundMessage(
            provider_id=token,
            address=str(sender["id"]),
            text=text,
            name=str(sender.get("name") or ""),
            attachments=tuple(attachments),
            metadata=metadata,
        )

    def fetch_attachment(self, attachment: InboundAttachment) -> tuple[bytes, str]:
        """Download a customer's media from Viber's (expiring) link, capped in size."""
        parts = urlsplit(attachment.url)
        if parts.scheme not in ("http", "https"):
            raise PermanentError(_("Refused to download media from %(url)s.") % {"url": attachment.url})
        limit = settings.PARLEY_MAX_ATTACHMENT_BYTES
        try:
            with (
                httpx.Client(timeout=float(self.setting("http_timeout") or 10), follow_redirects=True) as http,
                http.stream("GET", attachment.url) as response,
            ):
                if response.status_code == 429 or response.status_code >= 500:
                    raise TransientError(f"media download answered HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise PermanentError(
                        _("The media is gone or refused (HTTP %(status)s); Viber's links expire after about an hour.")
                        % {"status": response.status_code}
                    )
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise PermanentError(_("larger than %(limit)s bytes") % {"limit": limit})
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise PermanentError(_("larger than %(limit)s bytes") % {"limit": limit})
                    chunks.append(chunk)
                served = response.headers.get("Content-Type", "").split(";")[0].strip()
        except httpx.HTTPError as exc:
            raise TransientError(f"media download failed: {type(exc).__name__}") from exc
        content_type = served if served and served != "application/octet-stream" else attachment.content_type
        return b"".join(chunks), content_type

    # -- outbound --------------------------------------------------------------------------

    def sender(self) -> dict[str, str]:
        sender = {"name": str(self.channel.settings.get("sender_name") or "")[:MAX_SENDER_NAME]}
        if self.channel.settings.get("sender_avatar"):
            sender["avatar"] = str(self.channel.settings["sender_avatar"])
        return sender

    def offers_choices(self) -> bool:
        """A keyboard of "reply" buttons; a tap is the choice's id as text, mapped back (see ``_message``)."""
        return True

    def send(self, message: Message, address: str) -> SendResult:
        """Text in parts of at most 7 000 characters, then each attachment by our signed link.

        The first part's ``message_token`` is the message's provider id (receipts move its status);
        parts that went out on an earlier attempt are not sent again.
        """

        base: dict[str, Any] = {"receiver": address, "min_api_version": 1, "sender": self.sender()}
        bodies: list[dict[str, Any]] = [{"type": "text", "text": part} for part in split_text(message.text, MAX_TEXT)]
        for attachment in message.attachments.all():
            if attachment.size > MAX_FILE:
                raise PermanentError(
                    _("Viber takes files of at most 50 MB; %(name)s is larger.") % {"name": attachment.filename}
                )
            url = self.media_url(attachment)
            if attachment.content_type in PICTURE_TYPES and attachment.size <= MAX_PICTURE:
                bodies.append({"type": "picture", "text": "", "media": url})
            else:
                bodies.append(
                    {"type": "file", "media": url, "size": attachment.size, "file_name": attachment.filename[:255]}
                )
        if not bodies:
            raise PermanentError(_("The message is empty."))
        if message.metadata.get("ask_phone"):
            bodies[-1]["keyboard"] = {
                "Type": "keyboard",
                "DefaultHeight": False,
                "Buttons": [
                    {
                        "ActionType": "share-phone",
                        "ActionBody": "share-phone",
                        "Text": _("Share my phone number"),
                        "Columns": 6,
                        "Rows": 1,
                    }
                ],
            }
            bodies[-1]["min_api_version"] = 3
            bodies[-1]["tracking_data"] = SHARE_PHONE
        elif choices_of(message):
            choices = choices_of(message)
            # Viber's keyboard is six columns wide: up to six choices share one row, more get one each.
            columns = 6 // len(choices) if len(choices) <= 6 else 6
            bodies[-1]["keyboard"] = {
                "Type": "keyboard",
                "DefaultHeight": False,
                "Buttons": [
                    {"ActionType": "reply", "ActionBody": c["id"], "Text": c["title"], "Columns": columns, "Rows": 1}
                    for c in choices
                ],
            }
            bodies[-1]["tracking_data"] = CHOICES_TRACKING + json.dumps(
                {c["id"]: c["title"] for c in choices}, ensure_ascii=False
            )
        done = [str(x) for x in message.metadata.get("viber_sent") or []]
        for index, body in enumerate(bodies):
            if index < len(done):
                continue
            try:
                answer = self.call("send_message", {**base, **body})
            except PermanentError as exc:
                if exc.code and int(exc.code) in UNREACHABLE_STATUSES:
                    self._mark_unreachable(message, exc.reason)
                raise
            done.append(_token(answer) or "")
            if index < len(bodies) - 1:
                outbound.update_message(message_id=message.pk, change=lambda m: ({**m, "viber_sent": list(done)}, None))
        if not done[0]:
            raise PermanentError(_("Viber answered without a message token."))
        return SendResult(provider_id=done[0], status="sent")

    def _mark_unreachable(self, message: Message, reason: str) -> None:

        try:
            conversations.opt_out(channel=self.channel, customer=message.customer, reason=reason[:100])
        except Exception:
            logger.exception("could not record that message %s's customer is unreachable", message.pk)

    # -- outbound media --------------------------------------------------------------------

    def _media_signer(self) -> signing.TimestampSigner:
        return signing.TimestampSigner(salt=f"viber-media:{self.channel.key}")

    def media_url(self, attachment: Attachment) -> str:
        """A public, signed, expiring link Viber fetches an outbound attachment from. It ends in the
        file's extension, which Viber wants for pictures."""
        token = self._media_signer().sign(str(attachment.pk))
        extension = mimetypes.guess_extension(attachment.content_type or "") or ""
        if attachment.content_type == "image/jpeg":
            extension = ".jpg"
        return f"{self.public_base_url()}/hooks/{self.channel.key}/media/?a={token}&x=file{extension}"

    def serve_media(self, request: HttpRequest) -> HttpResponse:

        if request.method not in ("GET", "HEAD"):
            raise InvalidRequest("media is fetched with GET", status=405)
        try:
            pk = int(self._media_signer().unsign(request.GET.get("a", ""), max_age=MEDIA_LINK_MAX_AGE))
        except (signing.BadSignature, ValueError):
            raise InvalidRequest("unknown or expired media link", status=404) from None
        attachment = Attachment.objects.filter(pk=pk, message__channel=self.channel).first()
        if attachment is None:
            raise InvalidRequest("unknown or expired media link", status=404)
        content_type = attachment.content_type or mimetypes.guess_type(attachment.filename)[0]
        with attachment.file.open("rb") as handle:
            content = handle.read()
        response = HttpResponse(content, content_type=content_type or "application/octet-stream")
        response["Content-Disposition"] = content_disposition_header(False, attachment.filename) or "inline"
        response["Cache-Control"] = "private, max-age=3600"
        return response
