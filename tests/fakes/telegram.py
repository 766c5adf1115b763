"""A local stand-in for Telegram's Bot API: a real HTTP server on 127.0.0.1 (CHANNELS.md §7, §12.4).

It speaks what our code calls, at ``/bot<token>/<method>`` with JSON, form or multipart bodies:
``getMe``, ``setWebhook``, ``deleteWebhook``, ``getWebhookInfo``, ``getUpdates`` (409 while a
webhook is set, as Telegram does), ``sendMessage``, ``sendPhoto``, ``sendDocument``, ``getFile``,
``answerCallbackQuery`` (a tapped inline button),
and the file downloads at ``/file/bot<token>/<file_path>``. A wrong token is 401 "Unauthorized".

Failures as Telegram answers them: :meth:`FakeTelegram.fail_next` queues ``"429"`` (with
``parameters.retry_after``), ``"500"`` or ``"timeout"`` (the message IS sent, the answer comes too
late); chats in :attr:`blocked` get 403 "bot was blocked by the user", chats in
:attr:`never_started` 403 "bot can't initiate conversation with a user".

Towards Parley it delivers updates to the registered webhook with the secret header
(:meth:`deliver`), or queues them for ``getUpdates`` (:meth:`queue_update`). Updates are built with
python-telegram-bot's own objects (:func:`text_update` and friends), so their shapes come from a
different author than our parser. Message ids are one counter per chat, shared by both directions,
as in a real private chat.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import telegram

from tests.fakes.http import LocalServer, send_json

TOKEN = "123456:AAE-test-token_for-the-stand-in"
BOT_ID = 123456
BOT_USERNAME = "acme_support_bot"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, tuple[str, bytes, str]]]:
    """JSON, form or multipart, as the Bot API accepts; nested form fields are JSON strings."""
    if not body:
        return {}, {}
    if content_type.startswith("application/json"):
        return json.loads(body), {}
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        params: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes, str]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename():
                files[str(name)] = (part.get_filename() or "", payload, part.get_content_type())
            else:
                params[str(name)] = payload.decode()
        return _decoded(params), files
    return _decoded({k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}), {}


def _decoded(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if isinstance(value, str) and value[:1] in "{[":
            with suppress(ValueError):
                value = json.loads(value)
        out[key] = value
    return out


@dataclass
class FakeTelegram(LocalServer):
    token: str = TOKEN
    slow_seconds: float = 3.0
    # Telegram calls HTTPS only; the end-to-end tests' Daphne speaks plain HTTP on loopback.
    accept_http: bool = True
    calls: list[Call] = field(default_factory=list)
    # Files the bot may download: file_id -> (file_path, content, size reported by getFile).
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    never_started: set[int] = field(default_factory=set)
    webhook: dict[str, Any] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    next_update_id: int = 512345678
    _message_ids: dict[int, int] = field(default_factory=dict)
    _failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control ------------------------------------------------------------------------------

    def fail_next(self, *modes: str) -> None:
        with self._lock:
            self._failures.extend(modes)

    def add_file(self, file_id: str, content: bytes, *, path: str = "") -> None:
        self.files[file_id] = (path or f"photos/{file_id}.jpg", content)

    def message_id(self, chat_id: int) -> int:
        with self._lock:
            self._message_ids[chat_id] = self._message_ids.get(chat_id, 40) + 1
            return self._message_ids[chat_id]

    def update_id(self) -> int:
        with self._lock:
            self.next_update_id += 1
            return self.next_update_id

    def sent(self, *methods: str) -> list[Call]:
        wanted = methods or ("sendMessage", "sendPhoto", "sendDocument")
        return [c for c in self.calls if c.method in wanted]

    # -- towards Parley -----------------------------------------------------------------------

    def deliver(self, update: dict[str, Any] | str, *, url: str = "", secret: str | None = None) -> httpx.Response:
        """POST an update to the registered webhook with its secret (or the one given)."""
        body = update if isinstance(update, str) else json.dumps(update)
        token = self.webhook.get("secret_token", "") if secret is None else secret
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = token
        return httpx.post(url or self.webhook["url"], content=body.encode(), headers=headers, timeout=10)

    def queue_update(self, update: dict[str, Any]) -> None:
        with self._lock:
            self.updates.append(update)

    # -- the Bot API --------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(handler.path).path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if path.startswith("/file/bot"):
            return self._download(handler, path)
        prefix, _sep, api_method = path[len("/bot") :].rpartition("/")
        if not path.startswith("/bot") or prefix != self.token:
            return send_json(handler, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        params, files = _parse_body(handler.headers.get("Content-Type", ""), body)
        with self._lock:
            self.calls.append(Call(api_method, params, files))
        answer = getattr(self, f"api_{api_method}", None)
        if answer is None:
            return send_json(handler, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        status, payload = answer(params, files)
        if payload.pop("_slow", False):
            time.sleep(self.slow_seconds)
        return send_json(handler, status, payload)

    def _download(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        token, _sep, file_path = path[len("/file/bot") :].partition("/")
        found = next((content for p, content in self.files.values() if p == file_path), None)
        if token != self.token or found is None:
            return send_json(handler, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(found)))
        handler.end_headers()
        handler.wfile.write(found)
        return None

    @staticmethod
    def ok(result: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"ok": True, "result": result}

    @staticmethod
    def error(code: int, description: str, **parameters: Any) -> tuple[int, dict[str, Any]]:
        payload: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            payload["parameters"] = parameters
        return code, payload

    def api_answerCallbackQuery(self, params: dict[str, Any], files: Any) -> tuple[int, dict[str, Any]]:
        if not params.get("callback_query_id"):
            return self.error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        return self.ok(True)

    def api_getMe(self, params: dict[str, Any], files: Any) -> tuple[int, dict[str, Any]]:
        return self.ok(
            telegram.User(
                id=BOT_ID, is_bot=True, first_name="Acme Support", username=BOT_USERNAME, can_join_groups=False
            ).to_dict()
        )

    def api_setWebhook(self, params: dict[str, Any], files: Any) -> tuple[int, dict[str, Any]]:
        url = str(params.get("url") or "")
        if not url or (url.startswith("http://") and not self.accept_http):
            return self.error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = str(params.get("secret_token") or "")
        if (secret and not all(ch.isalnum() or ch in "_-" for ch in secret)) or len(secret) > 256:
            return self.error(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": url, "secret_token": secret, "allowed_updates": params.get("allowed_updates")}
        return self.ok(True)

    def api_deleteWebhook(self, params: dict[str, Any], files: Any) -> tuple[int, dict[str, Any]]:
        self.webhook = {}
        return self.ok(True)

    def api_getWebhookInfo(self, params: dict[str, Any], files: Any) -> tuple[int, dict[str, Any]]:
        return self.ok({"url": self.webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": 0})

    def api_getUpdates(self, params: dict[str, Any], files: Any) -> tuple[int, dict[str, Any]]:
        if self.webhook:
            return self.error(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset") or 0)
        with self._lock:
            # Telegram forgets what is below the offset: it was confirmed.
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            found = list(self.updates[: int(params.get("limit") or 100)])
        return self.ok(found)

    def api_getFile(self, params: dict[str, Any], files: Any) -> tuple[int, dict[str, Any]]:
        file_id = str(params.get("file_id") or "")
        if file_id not in self.files:
            return self.error(400, "Bad Request: invalid file_id")
        path, content = self.files[file_id]
        if len(content) > 20 * 1024 * 1024:
            return self.error(400, "Bad Request: file is too big")
        return self.ok(
            {"file_id": file_id, "file_unique_id": file_id[-8:], "file_size": len(content), "file_path": path}
        )

    def api_sendMessage(self, params: dict[str, Any], files: Any) -> tuple[int, dict[str, Any]]:
        text = str(params.get("text") or "")
        if not text:
            return self.error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return self.error(400, "Bad Request: message is too long")
        return self._send(params, {"text": text})

    def api_sendPhoto(self, params: dict[str, Any], files: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "photo" not in files and not params.get("photo"):
            return self.error(400, "Bad Request: there is no photo in the request")
        photo = {"file_id": "sent-" + secrets.token_hex(6), "file_unique_id": "u1", "width": 1, "height": 1}
        return self._send(
            params, {"photo": [photo], **({"caption": params["caption"]} if params.get("caption") else {})}
        )

    def api_sendDocument(self, params: dict[str, Any], files: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "document" not in files and not params.get("document"):
            return self.error(400, "Bad Request: there is no document in the request")
        name = files["document"][0] if "document" in files else "file"
        document = {"file_id": "sent-" + secrets.token_hex(6), "file_unique_id": "u2", "file_name": name}
        return self._send(
            params, {"document": document, **({"caption": params["caption"]} if params.get("caption") else {})}
        )

    def _send(self, params: dict[str, Any], content: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            mode = self._failures.pop(0) if self._failures else ""
        if mode == "429":
            self.calls[-1].params["_refused"] = 429
            return self.error(429, "Too Many Requests: retry after 1", retry_after=1)
        if mode == "500":
            self.calls[-1].params["_refused"] = 500
            return self.error(500, "Internal Server Error")
        try:
            chat_id = int(params.get("chat_id") or 0)
        except ValueError:
            return self.error(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            self.calls[-1].params["_refused"] = 403
            return self.error(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.never_started:
            self.calls[-1].params["_refused"] = 403
            return self.error(403, "Forbidden: bot can't initiate conversation with a user")
        message = {
            "message_id": self.message_id(chat_id),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Acme Support", "username": BOT_USERNAME},
            **content,
        }
        status, payload = self.ok(message)
        if mode == "timeout":
            payload["_slow"] = True
        return status, payload

    def delivered(self) -> list[Call]:
        """The sends that reached the chat (not refused)."""
        return [c for c in self.sent() if "_refused" not in c.params]


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeTelegram]:
    fake = FakeTelegram(**kwargs).start()
    try:
        yield fake
    finally:
        fake.stop()


# -- realistic updates, built with python-telegram-bot's objects ---------------------------------

ALICE = telegram.User(
    id=987654321, is_bot=False, first_name="Alice", last_name="Customer", username="alice_c", language_code="en"
)


def private_chat(user: telegram.User = ALICE) -> telegram.Chat:
    return telegram.Chat(
        id=user.id, type=telegram.constants.ChatType.PRIVATE, first_name=user.first_name, username=user.username
    )


def build_update(
    fake: FakeTelegram | None, *, edited: bool = False, update_id: int | None = None, **fields: Any
) -> dict[str, Any]:
    user = fields.pop("from_user", ALICE)
    chat = fields.pop("chat", None) or private_chat(user)
    message_id = fields.pop("message_id", None) or (fake.message_id(chat.id) if fake else 41)
    message = telegram.Message(
        message_id=message_id,
        date=fields.pop("date", None) or datetime.now(UTC).replace(microsecond=0),
        chat=chat,
        from_user=user,
        **fields,
    )
    number = update_id or (fake.update_id() if fake else 512345678)
    update = telegram.Update(update_id=number, **({"edited_message": message} if edited else {"message": message}))
    return json.loads(update.to_json())


def text_update(fake: FakeTelegram | None, text: str, **fields: Any) -> dict[str, Any]:
    return build_update(fake, text=text, **fields)


def photo_update(fake: FakeTelegram | None, file_id: str, *, caption: str = "", **fields: Any) -> dict[str, Any]:
    sizes = (
        telegram.PhotoSize(file_id=f"{file_id}-small", file_unique_id="AQADsmall", width=90, height=67, file_size=1402),
        telegram.PhotoSize(file_id=file_id, file_unique_id="AQADlarge", width=1280, height=960, file_size=98213),
    )
    return build_update(fake, photo=sizes, caption=caption or None, **fields)


def contact_update(fake: FakeTelegram | None, phone: str, *, user_id: int | None, **fields: Any) -> dict[str, Any]:
    contact = telegram.Contact(phone_number=phone, first_name="Alice", last_name="Customer", user_id=user_id)
    return build_update(fake, contact=contact, **fields)


def callback_update(
    fake: FakeTelegram | None, data: str, *, message_id: int, text: str = "", user: telegram.User = ALICE
) -> dict[str, Any]:
    """The customer taps an inline keyboard button under our message ``message_id``."""
    ours = telegram.Message(
        message_id=message_id,
        date=datetime.now(UTC).replace(microsecond=0),
        chat=private_chat(user),
        from_user=telegram.User(id=BOT_ID, is_bot=True, first_name="Acme Support", username=BOT_USERNAME),
        text=text or None,
    )
    query = telegram.CallbackQuery(
        id=str(4382650000000000000 + (fake.update_id() if fake else 1)),
        from_user=user,
        chat_instance="-8817345300000000000",
        message=ours,
        data=data,
    )
    number = fake.update_id() if fake else 512345679
    return json.loads(telegram.Update(update_id=number, callback_query=query).to_json())
