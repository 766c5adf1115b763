"""Telegram through the Bot API (docs/connectors/telegram.md).

In: Telegram POSTs Update objects to ``/hooks/<key>/inbound/`` with the secret we gave it in
``X-Telegram-Bot-Api-Secret-Token`` (compared in constant time); the core stores each update once
per bot (dedupe on ``update_id``) and the worker parses it here. Without a public HTTPS URL the
channel polls ``getUpdates`` instead (``mode=polling``, :mod:`connectors.telegram.polling`) and the
updates enter the same way. Out: ``sendMessage`` / ``sendPhoto`` / ``sendDocument``, paced to
Telegram's limits, with 429 ``retry_after`` honoured and a block by the user recorded.
"""

from __future__ import annotations

import hmac
import json
import logging
import mimetypes
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils.translation import gettext as _

from connectors.telegram.client import API_BASE_URL, ApiError, BotApi
from inbox.models import InboundEvent, Message
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
    TransientError,
    choices_of,
    register,
    split_text,
)

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# The updates we handle; Telegram sends nothing else (setWebhook / getUpdates ``allowed_updates``).
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
# Updates that are recorded and deliberately ignored (with a log line).
IGNORED_UPDATES = frozenset(
    {
        "my_chat_member",
        "chat_member",
        "channel_post",
        "edited_channel_post",
        "chat_join_request",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
    }
)
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_BOT_DOWNLOAD = 20 * 1024 * 1024  # bots download at most 20 MB through the Bot API
FILE_SCHEME = "tg-file:"
# Pacing: about one message a second to a chat, thirty a second for the whole bot.
CHAT_INTERVAL = 1.0
BOT_PER_SECOND = 30
PACE_WAIT = 5.0
MODES = ("webhook", "polling")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _load(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("expected a JSON object (an Update)")
    return payload


def update_id(payload: dict[str, Any]) -> int:
    value = payload.get("update_id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest("update_id is missing or not an integer")
    return value


def _full_name(user: dict[str, Any]) -> str:
    return " ".join(str(user.get(k) or "").strip() for k in ("first_name", "last_name")).strip()


def _file(
    item: dict[str, Any], *, filename: str, content_type: str, kind: str
) -> tuple[InboundAttachment | None, dict[str, Any] | None]:
    """An attachment the worker downloads with getFile, or why it cannot (too big for a bot)."""
    file_id = str(item.get("file_id") or "")
    if not file_id:
        return None, None
    size = item.get("file_size")
    if isinstance(size, int) and size > MAX_BOT_DOWNLOAD:
        return None, {
            "filename": filename,
            "reason": _("Telegram lets bots download files of at most 20 MB; this %(kind)s is %(size)s bytes.")
            % {"kind": kind, "size": size},
        }
    query = f"?size={size}" if isinstance(size, int) else ""
    return InboundAttachment(filename=filename, content_type=content_type, url=f"{FILE_SCHEME}{file_id}{query}"), None


@register
class TelegramConnector(Connector):
    kind = "telegram"
    label = "Telegram"
    medium = "telegram"
    identity_kind = "telegram"
    asks_phone = True
    secret_settings: ClassVar[tuple[str, ...]] = ("bot_token", "secret_token")
    endpoints: ClassVar[tuple[str, ...]] = ("inbound",)
    # A retried send skips the parts that went out already (``metadata["telegram_sent"]``).
    idempotent_send = False

    # -- configuration ---------------------------------------------------------------------

    @classmethod
    def validate_settings(cls, channel_settings: Any) -> None:
        if not any(channel_settings.get(k) for k in ("bot_token", "bot_token_file", "bot_token_env")):
            raise ConfigurationError("missing settings for telegram: bot_token (or bot_token_file / bot_token_env)")
        mode = str(channel_settings.get("mode") or "webhook")
        if mode not in MODES:
            raise ConfigurationError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        base = str(channel_settings.get("api_base_url") or API_BASE_URL)
        if urlsplit(base).scheme not in ("http", "https"):
            raise ConfigurationError("api_base_url must be an http(s) URL")

    @property
    def mode(self) -> str:
        return str(self.channel.settings.get("mode") or "webhook")

    def api(self) -> BotApi:
        token = self.setting("bot_token")
        if not token:
            raise ConfigurationError(f"channel {self.channel.pk} has no Telegram bot token")
        return BotApi(
            token=token,
            base_url=self.setting("api_base_url") or API_BASE_URL,
            timeout=float(self.setting("http_timeout") or 10),
        )

    def webhook_paths(self) -> dict[str, str]:
        return {} if self.mode == "polling" else super().webhook_paths()

    def connect(self) -> None:
        """Check the token (``getMe``), then register our webhook with a fresh secret, or remove
        any webhook when the channel polls (Telegram refuses ``getUpdates`` while one is set)."""
        api = self.api()
        try:
            me = api.call("getMe")
        except ApiError as exc:
            raise ConfigurationError(f"Telegram refused the bot token (getMe: {exc})") from exc
        values = dict(self.channel.settings)
        values["bot_id"] = str(me.get("id", ""))
        values["bot_username"] = str(me.get("username", ""))
        try:
            if self.mode == "polling":
                api.call("deleteWebhook", {"drop_pending_updates": False})
            else:
                values.setdefault("secret_token", secrets.token_urlsafe(32))
                self.channel.settings = values
                api.call(
                    "setWebhook",
                    {
                        "url": self.webhook_urls()["inbound"],
                        "secret_token": values["secret_token"],
                        "allowed_updates": ALLOWED_UPDATES,
                        "max_connections": 40,
                    },
                )
        except ApiError as exc:
            hint = ""
            if "https" in exc.description.lower():
                hint = " (set PUBLIC_BASE_URL or public_base_url to this installation's HTTPS address, or use mode=polling)"
            raise ConfigurationError(f"Telegram refused the webhook: {exc}{hint}") from exc
        self.channel.settings = values
        self.channel.save(update_fields=["settings"])

    def check(self) -> list[CheckResult]:
        """``getMe`` (the token), then ``getWebhookInfo``: our URL in webhook mode, none when polling,
        and Telegram's last delivery error and backlog."""
        try:
            api = self.api()
            me = api.call("getMe")
        except ConfigurationError as exc:
            return [CheckResult("credentials", False, str(exc))]
        except ApiError as exc:
            return [CheckResult("credentials", False, f"Telegram refused the bot token (getMe: {exc}); set bot_token")]
        results = [CheckResult("credentials", True, f"bot @{me.get('username', '?')}")]
        try:
            info = api.call("getWebhookInfo") or {}
        except ApiError as exc:
            return [*results, CheckResult("webhook", False, f"getWebhookInfo failed: {exc}")]
        return [*results, self.webhook_finding(info)]

    def webhook_finding(self, info: dict[str, Any]) -> CheckResult:
        url = str(info.get("url") or "")
        if self.mode == "polling":
            if url:
                return CheckResult(
                    "webhook", False, f"the bot has a webhook ({url}) but the channel polls: reconnect the channel"
                )
            return CheckResult("webhook", True, "none (the channel polls getUpdates)")
        expected = self.webhook_urls()["inbound"]
        if url != expected:
            return CheckResult(
                "webhook", False, f"Telegram sends updates to {url or 'nowhere'}, not {expected}: reconnect the channel"
            )
        error = str(info.get("last_error_message") or "")
        pending = int(info.get("pending_update_count") or 0)
        if error:
            return CheckResult(
                "webhook", False, f"Telegram's last delivery to {url} failed: {error} ({pending} updates waiting)"
            )
        return CheckResult("webhook", True, f"{url} ({pending} updates waiting)")

    def disconnect(self) -> None:
        try:
            self.api().call("deleteWebhook", {"drop_pending_updates": False})
        except (ApiError, ConfigurationError) as exc:
            # A revoked token has no webhook left to remove; the channel goes off all the same.
            logger.warning("could not remove the Telegram webhook of channel %s: %s", self.channel.pk, exc)

    # -- inbound ---------------------------------------------------------------------------

    def verify(self, request: HttpRequest, endpoint: str) -> None:
        expected = self.setting("secret_token")
        if self.mode == "polling" or not expected:
            raise InvalidRequest("this channel takes no webhook (it polls, or was never connected)", status=403)
        given = request.headers.get(SECRET_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise InvalidRequest(f"bad or missing {SECRET_HEADER}", status=403)

    def dedupe_key(self, request: HttpRequest, endpoint: str) -> str:
        return f"update:{update_id(_load(request.body))}"

    def parse(self, event: InboundEvent) -> Iterable[Parsed]:
        payload = _load(bytes(event.body))
        number = update_id(payload)
        if "callback_query" in payload:
            yield from self._tap(number, payload["callback_query"])
            return
        if "message" in payload:
            message, edited = payload["message"], False
        elif "edited_message" in payload:
            message, edited = payload["edited_message"], True
        else:
            kinds = sorted(k for k in payload if k != "update_id")
            if kinds and kinds[0] in IGNORED_UPDATES:
                logger.info("telegram update %s on channel %s ignored: %s", number, self.channel.pk, kinds[0])
                return
            raise InvalidRequest(f"unsupported update type: {', '.join(kinds) or 'none'}")
        if not isinstance(message, dict) or not isinstance(message.get("chat"), dict):
            raise InvalidRequest("the update's message has no chat")
        chat = message["chat"]
        sender = message.get("from") if isinstance(message.get("from"), dict) else None
        if chat.get("type") != "private" or sender is None or sender.get("is_bot"):
            logger.info(
                "telegram update %s on channel %s ignored: a %s chat (only private chats are served)",
                number,
                self.channel.pk,
                chat.get("type"),
            )
            return
        if not isinstance(message.get("message_id"), int) or not isinstance(sender.get("id"), int):
            raise InvalidRequest("message_id or from.id is missing")
        inbound = self._message(number, message, sender, edited=edited)
        if edited and self._apply_edit(inbound, message):
            return
        yield inbound

    def _tap(self, number: int, query: Any) -> Iterable[Parsed]:
        """A tapped inline-keyboard button (the choices contract): an ordinary customer message whose
        text is the choice's title and ``metadata["choice"]`` its id. Telegram shows a spinner on the
        button until the bot answers the query: answered here, once (a failure is only logged)."""
        if not isinstance(query, dict) or not isinstance(query.get("from"), dict) or not query.get("id"):
            raise InvalidRequest("the callback query has no id or sender")
        sender = query["from"]
        ours: dict[str, Any] = query["message"] if isinstance(query.get("message"), dict) else {}
        chat: dict[str, Any] = ours["chat"] if isinstance(ours.get("chat"), dict) else {}
        if sender.get("is_bot") or (chat and chat.get("type") != "private"):
            logger.info(
                "telegram update %s on channel %s ignored: a tap outside a private chat", number, self.channel.pk
            )
            return
        try:
            self.api().call("answerCallbackQuery", {"callback_query_id": str(query["id"])}, timeout=3.0)
        except ApiError as exc:
            logger.info("telegram callback %s on channel %s not answered: %s", query["id"], self.channel.pk, exc)
        data = str(query.get("data") or "")[:MAX_CHOICE_ID]
        if not data:
            return
        chat_id = chat.get("id", sender.get("id"))
        title = self._choice_title(f"{chat_id}:{ours.get('message_id', '')}", data)
        yield InboundMessage(
            provider_id=f"{chat_id}:callback:{query['id']}",
            address=str(sender["id"]),
            text=title,
            name=_full_name(sender),
            handle=str(sender.get("username") or ""),
            metadata={"choice": data, "telegram": {"update_id": number, "chat_id": chat_id}},
        )

    def _choice_title(self, provider_id: str, choice: str) -> str:
        """The title of the tapped choice, from the message of ours that offered it (the id else)."""
        ours = Message.objects.filter(channel=self.channel, provider_id=provider_id).first()
        for offered in choices_of(ours) if ours is not None else []:
            if offered["id"] == choice:
                return offered["title"]
        return choice

    def _message(self, number: int, message: dict[str, Any], sender: dict[str, Any], *, edited: bool) -> InboundMessage:
        chat_id = message["chat"]["id"]
        details: dict[str, Any] = {
            "update_id": number,
            "chat_id": chat_id,
            "message_id": message["message_id"],
        }
        for key in ("username", "language_code"):
            if sender.get(key):
                details[key] = sender[key]
        metadata: dict[str, Any] = {"telegram": details}
        text = str(message.get("text") or message.get("caption") or "")
        attachments: list[InboundAttachment] = []
        skipped: list[dict[str, Any]] = []

        def attach(item: Any, filename: str, content_type: str, kind: str) -> None:
            if not isinstance(item, dict):
                return
            found, refused = _file(item, filename=filename, content_type=content_type, kind=kind)
            if found is not None:
                attachments.append(found)
            if refused is not None:
                skipped.append(refused)

        mid = message["message_id"]
        if isinstance(message.get("photo"), list) and message["photo"]:
            sizes = [p for p in message["photo"] if isinstance(p, dict)]
            largest = max(sizes, key=lambda p: (p.get("width", 0) * p.get("height", 0), p.get("file_size", 0)))
            attach(largest, f"photo-{mid}.jpg", "image/jpeg", _("photo"))
        document = message.get("document")
        if isinstance(document, dict):
            content_type = str(document.get("mime_type") or "application/octet-stream")
            name = str(document.get("file_name") or f"document-{mid}{mimetypes.guess_extension(content_type) or ''}")
            attach(document, name, content_type, _("document"))
        for key, default_type, extension, label in (
            ("voice", "audio/ogg", ".ogg", _("voice message")),
            ("audio", "audio/mpeg", ".mp3", _("audio")),
            ("video", "video/mp4", ".mp4", _("video")),
            ("video_note", "video/mp4", ".mp4", _("video message")),
            ("animation", "video/mp4", ".mp4", _("animation")),
        ):
            item = message.get(key)
            if isinstance(item, dict):
                content_type = str(item.get("mime_type") or default_type)
                name = str(item.get("file_name") or f"{key}-{mid}{extension}")
                attach(item, name, content_type, label)
        sticker = message.get("sticker")
        if isinstance(sticker, dict):
            emoji = str(sticker.get("emoji") or "")
            metadata["sticker"] = {"emoji": emoji, "set_name": sticker.get("set_name", "")}
            text = text or emoji or _("[sticker]")
            if not sticker.get("is_animated") and not sticker.get("is_video"):
                attach(sticker, f"sticker-{mid}.webp", "image/webp", _("sticker"))
        location = message.get("location")
        if isinstance(location, dict) and not text:
            venue: dict[str, Any] = message["venue"] if isinstance(message.get("venue"), dict) else {}
            place = " ".join(filter(None, [str(venue.get("title", "")), str(venue.get("address", ""))]))
            text = _("Shared a location: %(place)s %(lat)s, %(lon)s") % {
                "place": place,
                "lat": location.get("latitude"),
                "lon": location.get("longitude"),
            }
            metadata["location"] = {"lat": location.get("latitude"), "lon": location.get("longitude")}
        contact = message.get("contact")
        if isinstance(contact, dict) and contact.get("phone_number"):
            phone = str(contact["phone_number"])
            own = contact.get("user_id") == sender.get("id")
            metadata["shared_phone"] = {"phone": phone, "verified": own, "name": _full_name(contact)}
            if own:
                text = text or _("Shared their phone number: %(phone)s") % {"phone": phone}
            else:
                text = text or _("Shared a contact: %(name)s %(phone)s") % {"name": _full_name(contact), "phone": phone}
        if not text and not attachments and not skipped:
            kinds = sorted(
                k for k in message if k not in {"message_id", "date", "chat", "from", "edit_date", "entities"}
            )
            text = _("[A Telegram message this inbox cannot show: %(kinds)s]") % {"kinds": ", ".join(kinds)}
        if message.get("media_group_id"):
            metadata["album"] = str(message["media_group_id"])
        if skipped:
            metadata["skipped_attachments"] = skipped
        if edited:
            metadata["edited_at"] = message.get("edit_date") or message.get("date")
        reply_to = message.get("reply_to_message")
        replies_to: tuple[str, ...] = ()
        if isinstance(reply_to, dict) and isinstance(reply_to.get("message_id"), int):
            replies_to = (f"{chat_id}:{reply_to['message_id']}",)
            metadata["telegram"]["reply_to_message_id"] = reply_to["message_id"]
        sent_at = datetime.fromtimestamp(message["date"], tz=UTC) if isinstance(message.get("date"), int) else None
        return InboundMessage(
            provider_id=f"{chat_id}:{mid}",
            address=str(sender["id"]),
            text=text,
            name=_full_name(sender),
            handle=f"@{sender['username']}" if isinstance(sender.get("username"), str) and sender["username"] else "",
            sent_at=sent_at,
            attachments=tuple(attachments),
            replies_to=replies_to,
            metadata=metadata,
        )

    def _apply_edit(self, inbound: InboundMessage, message: dict[str, Any]) -> bool:
        """Rewrite the stored message an ``edited_message`` changes; False when it is not stored
        (the edit arrived first, or the original predates the bot): then it is stored as it reads now,
        and the original, should it come later, is a duplicate of it."""

        stored = Message.objects.filter(
            channel=self.channel, provider_id=inbound.provider_id, direction=Message.Direction.INBOUND
        ).first()
        if stored is None:
            return False
        edited_at = int(message.get("edit_date") or 0)

        def change(metadata: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
            if int(metadata.get("edited_at") or 0) >= edited_at and metadata.get("edited_at"):
                return metadata, None  # an older edit, or this one again
            history = list(metadata.get("edits") or [])
            history.append({"text": stored.text, "until": edited_at})
            return {**metadata, "edited_at": edited_at, "edits": history[-10:]}, inbound.text

        outbound.update_message(message_id=stored.pk, change=change)
        return True

    def fetch_attachment(self, attachment: InboundAttachment) -> tuple[bytes, str]:
        """``getFile``, then download it from the file URL, within the bot's 20 MB and our own cap."""
        if not attachment.url.startswith(FILE_SCHEME):
            raise PermanentError(_("Refused to download %(url)s.") % {"url": attachment.url})
        file_id, _sep, query = attachment.url[len(FILE_SCHEME) :].partition("?")
        limit = min(MAX_BOT_DOWNLOAD, settings.PARLEY_MAX_ATTACHMENT_BYTES)
        api = self.api()
        try:
            found = api.call("getFile", {"file_id": file_id})
        except ApiError as exc:
            if exc.error_code == 0 or exc.error_code == 429 or exc.error_code >= 500:
                raise TransientError(f"getFile failed: {exc}") from exc
            raise PermanentError(_("Telegram refused the file: %(reason)s") % {"reason": exc.description}) from exc
        path = str((found or {}).get("file_path") or "")
        if not path:
            raise PermanentError(_("Telegram gave no download path for the file (it may be over 20 MB)."))
        declared = str((found or {}).get("file_size") or (parse_qs(query).get("size") or ["0"])[0])
        if declared.isdigit() and int(declared) > limit:
            raise PermanentError(_("The file is larger than %(limit)s bytes.") % {"limit": limit})
        try:
            with (
                httpx.Client(timeout=api.timeout) as http,
                http.stream("GET", api.file_url(path)) as response,
            ):
                if response.status_code == 429 or response.status_code >= 500:
                    raise TransientError(f"file download answered HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise PermanentError(
                        _("The file is gone or refused (HTTP %(status)s).") % {"status": response.status_code}
                    )
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise PermanentError(_("The file is larger than %(limit)s bytes.") % {"limit": limit})
                    chunks.append(chunk)
                served = response.headers.get("Content-Type", "").split(";")[0].strip()
        except httpx.HTTPError as exc:
            raise TransientError(f"file download failed: {type(exc).__name__}") from exc
        content_type = attachment.content_type
        if not content_type or content_type == "application/octet-stream":
            content_type = served or mimetypes.guess_type(path)[0] or "application/octet-stream"
        return b"".join(chunks), content_type

    # -- outbound --------------------------------------------------------------------------

    def offers_choices(self) -> bool:
        """An inline keyboard under the message; a tap is a callback query (see :meth:`_tap`)."""
        return True

    def send(self, message: Message, address: str) -> SendResult:
        """Text in parts of at most 4096 characters (cut at paragraphs), then attachments; one
        attachment with a short text goes as one message with a caption. Parts that went out on an
        earlier attempt are not sent again."""
        api = self.api()
        files = list(message.attachments.all())
        text = message.text.strip()
        steps: list[tuple[str, Any]] = []
        if len(files) == 1 and len(text) <= MAX_CAPTION:
            steps.append(("file", (files[0], text)))
        else:
            steps.extend(("text", part) for part in split_text(text, MAX_TEXT))
            steps.extend(("file", (f, "")) for f in files)
        if not steps:
            raise PermanentError(_("The message is empty."))
        done: list[int] = [int(x) for x in message.metadata.get("telegram_sent") or []]
        first_id = done[0] if done else None
        for index, (kind, value) in enumerate(steps):
            if index < len(done):
                continue
            params: dict[str, Any] = {"chat_id": address}
            choices = choices_of(message)
            if index == len(steps) - 1 and choices:
                # One row of up to five buttons; more go on further rows.
                buttons = [{"text": c["title"], "callback_data": c["id"]} for c in choices]
                params["reply_markup"] = {"inline_keyboard": [buttons[i : i + 5] for i in range(0, len(buttons), 5)]}
            elif index == len(steps) - 1 and message.metadata.get("ask_phone"):
                params["reply_markup"] = {
                    "keyboard": [[{"text": _("Share my phone number"), "request_contact": True}]],
                    "one_time_keyboard": True,
                    "resize_keyboard": True,
                }
            quoted = self._quoted(message, address) if index == 0 else None
            if quoted is not None:
                params["reply_parameters"] = {"message_id": quoted, "allow_sending_without_reply": True}
            self._pace(address)
            result = self._send_step(api, message, kind, value, params)
            sent_id = int(result.get("message_id", 0)) if isinstance(result, dict) else 0
            done.append(sent_id)
            first_id = first_id or sent_id
            if index < len(steps) - 1:
                self._remember(message, done)
        return SendResult(provider_id=f"{address}:{first_id}", status="sent")

    def _quoted(self, message: Message, chat: str) -> int | None:
        """The Telegram message id of the customer's message this reply answers, when it is in this chat."""
        answered = message.metadata.get("reply_to")
        if not isinstance(answered, int):
            return None
        provider_id = (
            Message.objects.filter(pk=answered, channel=self.channel).values_list("provider_id", flat=True).first()
        )
        found_chat, _sep, number = (provider_id or "").partition(":")
        return int(number) if found_chat == chat and number.isdigit() else None

    def _send_step(self, api: BotApi, message: Message, kind: str, value: Any, params: dict[str, Any]) -> Any:
        try:
            if kind == "text":
                return api.call("sendMessage", {**params, "text": value})
            attachment, caption = value
            with attachment.file.open("rb") as handle:
                content = handle.read()
            content_type = attachment.content_type or "application/octet-stream"
            photo = content_type in IMAGE_TYPES and content_type != "image/gif" and len(content) <= 10 * 1024 * 1024
            method, field = ("sendPhoto", "photo") if photo else ("sendDocument", "document")
            if caption:
                params["caption"] = caption
            return api.call(method, params, files={field: (attachment.filename, content, content_type)})
        except ApiError as exc:
            raise self._error(message, exc) from exc

    def _remember(self, message: Message, done: list[int]) -> None:
        """Keep which parts went out, so a retry after a failure in the middle sends only the rest."""

        message.metadata["telegram_sent"] = list(done)

        def change(metadata: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
            return {**metadata, "telegram_sent": list(done)}, None

        outbound.update_message(message_id=message.pk, change=change)

    def _error(self, message: Message, exc: ApiError) -> Exception:
        code, description = exc.error_code, exc.description
        if code == 429:
            return TransientError(
                _("Telegram is rate limiting the bot; retrying in %(seconds)s s.")
                % {"seconds": int(exc.retry_after or 1)},
                retry_after=exc.retry_after or 1.0,
            )
        if code == 0 or code >= 500:
            return TransientError(_("Telegram could not be reached: %(error)s") % {"error": description})
        if code in (401, 404):
            return ConfigurationError(f"Telegram refused the bot token ({code} {description})")
        if code == 403:
            lowered = description.lower()
            if "blocked" in lowered:
                reason = _("The customer blocked the bot on Telegram; they can be reached again once they write.")
            elif "initiate" in lowered:
                reason = _("The customer has not started a chat with the bot on Telegram; the bot cannot write first.")
            elif "deactivated" in lowered:
                reason = _("The customer's Telegram account is deleted.")
            else:
                reason = _("Telegram refused the message: %(reason)s") % {"reason": description}
            self._mark_unreachable(message, reason)
            return PermanentError(reason, code="403")
        return PermanentError(_("Telegram refused the message: %(reason)s") % {"reason": description}, code=str(code))

    def _mark_unreachable(self, message: Message, reason: str) -> None:

        try:
            conversations.opt_out(channel=self.channel, customer=message.customer, reason=reason[:100])
        except Exception:
            logger.exception("could not record that message %s's customer is unreachable", message.pk)

    def _pace(self, chat: str) -> None:
        """Wait for this chat's slot (one message a second) and the bot's (thirty a second).

        Slots are kept in the shared cache (Redis), so every worker process paces together. A
        slot that does not come within a few seconds is a transient failure, retried later.
        """
        deadline = time.monotonic() + PACE_WAIT
        chat_key = f"telegram:pace:{self.channel.pk}:{chat}"
        try:
            while not cache.add(chat_key, 1, timeout=CHAT_INTERVAL):
                if time.monotonic() > deadline:
                    raise TransientError(_("Too many messages to this chat at once; retrying."), retry_after=1.0)
                time.sleep(0.05)
            while True:
                second = int(time.time())
                bot_key = f"telegram:rate:{self.channel.pk}:{second}"
                cache.add(bot_key, 0, timeout=2)
                if cache.incr(bot_key) <= BOT_PER_SECOND:
                    return
                if time.monotonic() > deadline:
                    raise TransientError(_("The bot is sending too fast; retrying."), retry_after=1.0)
                time.sleep(max(0.0, second + 1 - time.time()))
        except TransientError:
            raise
        except Exception as exc:  # the cache is down: sending matters more than pacing
            logger.warning("telegram pacing skipped: %s", exc)
