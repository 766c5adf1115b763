"""A local stand-in for Viber's REST Bot API: a real HTTP server on 127.0.0.1 (CHANNELS.md §8, §12.5).

It speaks what our code calls, ``POST /pa/<method>`` with JSON and ``X-Viber-Auth-Token``:
``set_webhook`` (it calls the URL at once with a signed ``webhook`` event and answers ``invalidUrl``
unless that got a 200, as Viber does; an empty URL removes the webhook), ``send_message`` and
``get_account_info``. Answers carry ``status`` / ``status_message``; a wrong token is status 2
``invalidAuthToken``. Receivers in :attr:`not_registered` get status 5 ``receiverNotRegistered``,
in :attr:`not_subscribed` status 6 ``notSubscribed``; :meth:`fail_next` queues
``"tooManyRequests"`` (status 12), ``"500"`` or ``"timeout"``.

Towards Parley it signs callbacks exactly as Viber does (hex HMAC-SHA256 of the raw body, keyed with
the auth token; :meth:`callback`), and after each send it can post receipts (``delivered``, ``seen``)
in any order, duplicates included (:attr:`receipts`). Customers' media are served from ``/media/``.
Message tokens are int64 values larger than 2**53, so a float anywhere would corrupt them.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.fakes.http import LocalServer, send_json

# CHANNELS.md §8's signature vector uses this token.
AUTH_TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
USER_ID = "01234567890A="
USER = {
    "id": USER_ID,
    "name": "Alice Customer",
    "avatar": "https://avatar.example.test/a.jpg",
    "language": "en",
    "country": "US",
    "api_version": 10,
}
STATUS_MESSAGES = {
    0: "ok",
    1: "invalidUrl",
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "receiverNotRegistered",
    6: "notSubscribed",
    12: "tooManyRequests",
}


def sign(body: bytes, token: str = AUTH_TOKEN) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class FakeViber(LocalServer):
    base_path = "/pa"
    auth_token: str = AUTH_TOKEN
    slow_seconds: float = 3.0
    # Whether set_webhook calls the URL back (off when the URL is Django's test client, unreachable).
    verify_webhooks: bool = True
    webhook: dict[str, Any] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    not_registered: set[str] = field(default_factory=set)
    not_subscribed: set[str] = field(default_factory=set)
    # Receipts posted after each successful send, in this order (repeat to duplicate).
    receipts: list[str] = field(default_factory=list)
    receipt_results: list[tuple[str, int]] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    _tokens: Iterator[int] = field(default_factory=lambda: itertools.count(5741311803571721087 + 1000))
    _failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control ------------------------------------------------------------------------------

    def fail_next(self, *modes: str) -> None:
        with self._lock:
            self._failures.extend(modes)

    def token(self) -> int:
        with self._lock:
            return next(self._tokens)

    def add_media(self, name: str, content: bytes, content_type: str) -> str:
        self.media[f"/media/{name}"] = (content, content_type)
        return self.base_url.removesuffix(self.base_path) + f"/media/{name}"

    def delivered(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if "_refused" not in m]

    # -- towards Parley -----------------------------------------------------------------------

    def callback(self, payload: dict[str, Any] | str, *, url: str = "", signature: str | None = None) -> httpx.Response:
        """POST a callback signed like Viber (or with the given, possibly forged, signature)."""
        body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        headers = {"Content-Type": "application/json"}
        headers["X-Viber-Content-Signature"] = sign(body, self.auth_token) if signature is None else signature
        return httpx.post(url or self.webhook["url"], content=body, headers=headers, timeout=10)

    def _receipts(self, token: int, receiver: str) -> None:
        for kind in self.receipts:
            payload = {
                "event": kind,
                "timestamp": int(time.time() * 1000),
                "chat_hostname": "SN-CHAT-01_",
                "message_token": token,
                "user_id": receiver,
            }
            try:
                self.receipt_results.append((kind, self.callback(payload).status_code))
            except httpx.HTTPError as exc:
                self.receipt_results.append((f"{kind}: {exc}", 0))

    # -- the API ------------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(handler.path).path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if method == "GET" and path in self.media:
            content, content_type = self.media[path]
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(content)))
            handler.end_headers()
            handler.wfile.write(content)
            return None
        if method == "GET":
            return send_json(handler, 404, {"error": "gone"})
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return self._answer(handler, 3)
        with self._lock:
            self.requests.append((path, payload))
        if handler.headers.get("X-Viber-Auth-Token") != self.auth_token:
            return self._answer(handler, 2)
        if path == "/pa/set_webhook":
            return self._set_webhook(handler, payload)
        if path == "/pa/send_message":
            return self._send_message(handler, payload)
        if path == "/pa/get_account_info":
            return self._answer(
                handler, 0, id="pa:5", name="Acme Support", uri="acmesupport", webhook=self.webhook.get("url", "")
            )
        return send_json(handler, 404, {"status": 3, "status_message": "badData"})

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, **extra: Any) -> None:
        send_json(handler, 200, {"status": status, "status_message": STATUS_MESSAGES.get(status, "error"), **extra})

    def _set_webhook(self, handler: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        url = str(payload.get("url") or "")
        if not url:
            self.webhook = {}
            return self._answer(handler, 0)
        if self.verify_webhooks:
            check = {
                "event": "webhook",
                "timestamp": int(time.time() * 1000),
                "chat_hostname": "SN-CHAT-01_",
                "message_token": self.token(),
            }
            try:
                answered = self.callback(check, url=url).status_code
            except httpx.HTTPError:
                answered = 0
            if answered != 200:
                return self._answer(handler, 1)
        self.webhook = {"url": url, "event_types": payload.get("event_types")}
        return self._answer(handler, 0, event_types=payload.get("event_types") or [])

    def _send_message(self, handler: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        with self._lock:
            mode = self._failures.pop(0) if self._failures else ""
        receiver = str(payload.get("receiver") or "")
        record = dict(payload)
        with self._lock:
            self.sent.append(record)
        if mode == "500":
            record["_refused"] = 500
            return send_json(handler, 500, {"error": "internal"})
        if mode == "tooManyRequests":
            record["_refused"] = 12
            return self._answer(handler, 12)
        if not receiver or not payload.get("type") or not isinstance(payload.get("sender"), dict):
            record["_refused"] = 4
            return self._answer(handler, 4)
        if len(str(payload.get("text") or "")) > 7000 or len(json.dumps(payload)) > 30 * 1024:
            record["_refused"] = 3
            return self._answer(handler, 3)
        if receiver in self.not_registered:
            record["_refused"] = 5
            return self._answer(handler, 5)
        if receiver in self.not_subscribed:
            record["_refused"] = 6
            return self._answer(handler, 6)
        token = self.token()
        record["_token"] = token
        if mode == "timeout":
            time.sleep(self.slow_seconds)
        self._answer(handler, 0, message_token=token, chat_hostname="SN-CHAT-01_", billing_status=1)
        if self.receipts and self.webhook:
            threading.Thread(target=self._receipts, args=(token, receiver), daemon=True).start()
        return None


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeViber]:
    fake = FakeViber(**kwargs).start()
    try:
        yield fake
    finally:
        fake.stop()


# -- callbacks as Viber sends them (CHANNELS.md §14.9) --------------------------------------------


def message_event(message: dict[str, Any], *, token: int, sender: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event": "message",
        "timestamp": 1763832600000,
        "chat_hostname": "SN-CHAT-01_",
        "message_token": token,
        "sender": sender or USER,
        "message": message,
        "silent": False,
    }
