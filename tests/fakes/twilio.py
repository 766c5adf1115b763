"""A local stand-in for Twilio's REST API and webhooks: a real HTTP server on 127.0.0.1.

It speaks what our code calls (docs/connectors/twilio.md, "Protocol facts"):

- ``POST /2010-04-01/Accounts/<sid>/Messages.json`` (Basic auth; the test-credential magic numbers:
  To ``+15005550001`` → 21211, ``…02`` → 21612, ``…03`` → 21408, ``…04`` → 21610, ``…09`` → 21614;
  WhatsApp templates as ``ContentSid`` + ``ContentVariables``, rendered from :attr:`FakeTwilio.contents`;
  free-form text to an address in :attr:`FakeTwilio.closed_windows` fails later with 63016)
- ``GET /2010-04-01/Accounts/<sid>/Messages.json?To=…`` (the list our client reconciles with)
- ``GET …/Messages/<MM>/Media/<ME>`` (media, Basic auth required; or a redirect to where it is
  stored, as Twilio's API answers: :meth:`FakeTwilio.redirect`)
- ``POST /2010-04-01/Accounts/<sid>/Calls.json``
- ``POST /2010-04-01/Accounts/<sid>/Queues/<QU>/Members/<CA>.json`` (take a caller out of a queue;
  404 once the call is no longer waiting)

Flakiness is configurable: :meth:`FakeTwilio.fail_next` queues ``"500"``, ``"429"`` (with
``Retry-After``) or ``"timeout"`` (the message IS created, but the answer comes too late, the worst
case for exactly-once). After a successful send it posts signed status callbacks back, optionally
duplicated and out of order. :meth:`send_webhook` signs and posts any Twilio webhook.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from twilio.request_validator import RequestValidator

from tests.fakes.http import LocalServer, send_json

MAGIC_ERRORS = {
    "+15005550001": (21211, "The 'To' number is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


@dataclass
class SentMessage:
    sid: str
    params: dict[str, list[str]]
    created_at: datetime
    error: int | None = None
    # What Twilio made of a template: its approved text with the variables filled in.
    rendered: str = ""

    def get(self, name: str) -> str:
        return (self.params.get(name) or [""])[-1]

    def resource(self, account_sid: str) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": account_sid,
            "status": "queued",
            "to": self.get("To"),
            "from": self.get("From") or None,
            "messaging_service_sid": self.get("MessagingServiceSid") or None,
            "body": self.rendered or self.get("Body"),
            "num_segments": "1",
            "num_media": str(len(self.params.get("MediaUrl", []))),
            "error_code": None,
            "error_message": None,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": format_datetime(self.created_at),
            "date_updated": format_datetime(self.created_at),
            "date_sent": None,
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{self.sid}.json",
        }


@dataclass
class FakeTwilio(LocalServer):
    account_sid: str = "AC00000000000000000000000000000001"
    auth_token: str = "test_auth_token_0123456789abcdef"
    # Seconds a "timeout" answer is held back (longer than the client's timeout).
    slow_seconds: float = 3.0
    # Status callbacks posted after each successful send, in this order (repeat to duplicate).
    callbacks: list[str] = field(default_factory=lambda: ["sent", "delivered"])
    sent: list[SentMessage] = field(default_factory=list)
    calls: list[dict[str, list[str]]] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # Paths answered with ``307 Location: <url>`` (Twilio's API sends media to its storage so).
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    callback_results: list[tuple[str, int]] = field(default_factory=list)
    # Approved WhatsApp templates: ContentSid -> text with {{1}} placeholders (filled from ContentVariables).
    contents: dict[str, str] = field(default_factory=dict)
    # WhatsApp addresses whose 24-hour window is closed: a Body sent there fails with 63016, as on Twilio.
    closed_windows: set[str] = field(default_factory=set)
    # Queue members taken out through the REST API: (QueueSid, CallSid, form params); and calls that
    # are no longer in a queue (taken out, or bridged to an operator: set it in a test).
    dequeued: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    left_queue: set[str] = field(default_factory=set)
    # ``GET /Accounts/<sid>.json`` answers this status; the account's phone numbers (E.164 -> the
    # IncomingPhoneNumber's fields, such as sms_url) for ``GET /Accounts/<sid>/IncomingPhoneNumbers.json``.
    account_status: str = "active"
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)
    _failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control ------------------------------------------------------------------------------

    def fail_next(self, *modes: str) -> None:
        with self._lock:
            self._failures.extend(modes)

    def add_media(self, path: str, content: bytes, content_type: str) -> str:
        self.media[path] = (content, content_type)
        return self.base_url + path

    def redirect(self, path: str, location: str) -> str:
        """Answer GET ``path`` with a 307 to ``location``; returns the URL of ``path``."""
        self.redirects[path] = location
        return self.base_url + path

    # -- webhooks towards Parley --------------------------------------------------------------

    def sign(self, url: str, params: dict[str, str]) -> str:
        return RequestValidator(self.auth_token).compute_signature(url, params)

    def send_webhook(self, url: str, params: dict[str, str], *, signature: str | None = None) -> httpx.Response:
        """POST a form webhook signed like Twilio (or with the given, possibly forged, signature)."""
        headers = {"X-Twilio-Signature": self.sign(url, params) if signature is None else signature}
        headers["I-Twilio-Idempotency-Token"] = secrets.token_hex(8)
        return httpx.post(url, data=params, headers=headers, timeout=10)

    def _status_callbacks(self, message: SentMessage) -> None:
        url = message.get("StatusCallback")
        if not url:
            return
        for status in ["failed"] if message.error else self.callbacks:
            params = {
                "MessageSid": message.sid,
                "MessageStatus": status,
                "SmsSid": message.sid,
                "SmsStatus": status,
                "AccountSid": self.account_sid,
                "From": message.get("From"),
                "To": message.get("To"),
                "ApiVersion": "2010-04-01",
                **({"ErrorCode": str(message.error)} if message.error else {}),
            }
            try:
                response = self.send_webhook(url, params)
                self.callback_results.append((status, response.status_code))
            except httpx.HTTPError as exc:
                self.callback_results.append((f"{status}: {exc}", 0))

    # -- the REST API -------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((method, parts.path))
        if not self._authorised(handler):
            return send_json(handler, 401, {"code": 20003, "message": "Authenticate", "status": 401})
        prefix = f"/2010-04-01/Accounts/{self.account_sid}"
        if parts.path in self.redirects and method == "GET":
            handler.send_response(307)
            handler.send_header("Location", self.redirects[parts.path])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        if parts.path in self.media and method == "GET":
            content, content_type = self.media[parts.path]
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(content)))
            handler.end_headers()
            handler.wfile.write(content)
            return None
        if parts.path == f"{prefix}.json" and method == "GET":
            return send_json(
                handler,
                200,
                {
                    "sid": self.account_sid,
                    "friendly_name": "Acme Support",
                    "status": self.account_status,
                    "type": "Full",
                },
            )
        if parts.path == f"{prefix}/IncomingPhoneNumbers.json" and method == "GET":
            wanted = (parse_qs(parts.query).get("PhoneNumber") or [""])[0]
            found = [
                {"sid": "PN" + str(index).zfill(32), "phone_number": number, "account_sid": self.account_sid, **fields}
                for index, (number, fields) in enumerate(self.numbers.items())
                if not wanted or number == wanted
            ]
            return send_json(
                handler,
                200,
                {
                    "incoming_phone_numbers": found,
                    "first_page_uri": parts.path,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "page": 0,
                    "page_size": 50,
                    "start": 0,
                    "end": len(found),
                    "uri": parts.path,
                },
            )
        if parts.path == f"{prefix}/Messages.json" and method == "POST":
            return self._create_message(handler, parse_qs(body.decode(), keep_blank_values=True))
        if parts.path == f"{prefix}/Messages.json" and method == "GET":
            query = parse_qs(parts.query)
            to = (query.get("To") or [""])[0]
            with self._lock:
                found = [m.resource(self.account_sid) for m in reversed(self.sent) if not to or m.get("To") == to]
            return send_json(
                handler,
                200,
                {
                    "messages": found,
                    "first_page_uri": parts.path,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "page": 0,
                    "page_size": 50,
                    "start": 0,
                    "end": len(found),
                    "uri": parts.path,
                },
            )
        member = re.fullmatch(rf"{prefix}/Queues/(QU\w+)/Members/(CA\w+)\.json", parts.path)
        if member and method == "POST":
            queue_sid, call_sid = member.groups()
            params = parse_qs(body.decode(), keep_blank_values=True)
            with self._lock:
                waiting = call_sid not in self.left_queue
                if waiting:
                    self.dequeued.append((queue_sid, call_sid, params))
                    self.left_queue.add(call_sid)
            if not waiting:
                return send_json(handler, 404, {"code": 20404, "message": "Member not found", "status": 404})
            return send_json(
                handler,
                200,
                {"call_sid": call_sid, "queue_sid": queue_sid, "position": 1, "wait_time": 0, "uri": parts.path},
            )
        if parts.path == f"{prefix}/Calls.json" and method == "POST":
            params = parse_qs(body.decode(), keep_blank_values=True)
            with self._lock:
                self.calls.append(params)
            sid = "CA" + secrets.token_hex(16)
            return send_json(handler, 201, {"sid": sid, "status": "queued", "to": params.get("To", [""])[0]})
        return send_json(
            handler, 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}
        )

    def _authorised(self, handler: BaseHTTPRequestHandler) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return handler.headers.get("Authorization", "") == f"Basic {expected}"

    def _create_message(self, handler: BaseHTTPRequestHandler, params: dict[str, list[str]]) -> None:
        with self._lock:
            mode = self._failures.pop(0) if self._failures else ""
        if mode == "500":
            return send_json(handler, 500, {"code": 20500, "message": "Internal Server Error", "status": 500})
        if mode == "429":
            return send_json(
                handler,
                429,
                {"code": 20429, "message": "Too Many Requests", "status": 429},
                headers={"Retry-After": "1"},
            )
        to = (params.get("To") or [""])[-1].removeprefix("whatsapp:")
        if to in MAGIC_ERRORS:
            code, text = MAGIC_ERRORS[to]
            return send_json(handler, 400, {"code": code, "message": text, "status": 400})
        if not params.get("Body") and not params.get("MediaUrl") and not params.get("ContentSid"):
            return send_json(
                handler, 400, {"code": 21619, "message": "A text message body or media is required", "status": 400}
            )
        content_sid = (params.get("ContentSid") or [""])[-1]
        if content_sid and self.contents and content_sid not in self.contents:
            return send_json(handler, 400, {"code": 21655, "message": "The ContentSid is Invalid", "status": 400})
        message = SentMessage(sid="SM" + secrets.token_hex(16), params=params, created_at=datetime.now(UTC))
        if content_sid:
            # Twilio renders the approved text itself; the message resource carries it as its body.
            text = self.contents.get(content_sid, "")
            for key, value in json.loads((params.get("ContentVariables") or ["{}"])[-1]).items():
                text = text.replace("{{" + key + "}}", str(value))
            message.rendered = text
        elif (params.get("To") or [""])[-1] in self.closed_windows:
            # Accepted, then failed asynchronously, as Twilio does for free-form text outside the window.
            message.error = 63016
        with self._lock:
            self.sent.append(message)
        if mode == "timeout":
            time.sleep(self.slow_seconds)
        send_json(handler, 201, message.resource(self.account_sid))
        threading.Thread(target=self._status_callbacks, args=(message,), daemon=True).start()
        return None


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeTwilio]:
    fake = FakeTwilio(**kwargs).start()
    try:
        yield fake
    finally:
        fake.stop()


def form_body(params: dict[str, str]) -> str:
    return urlencode(params)


# -- helpers for tests ---------------------------------------------------------------------------

PUBLIC_BASE_URL = "https://inbox.example.test"
FIXTURES = Path(__file__).resolve().parent.parent / "connectors" / "fixtures" / "twilio"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8").strip()


def form(body: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}


def twilio_channel(
    kind: str, *, team: Any, api_base_url: str = "", public_base_url: str = PUBLIC_BASE_URL, **extra: Any
):
    """A Twilio channel with the stand-in's credentials (and its API base URL when given)."""
    from inbox.services import channels

    values: dict[str, Any] = {
        "account_sid": FakeTwilio.account_sid,
        "auth_token": FakeTwilio.auth_token,
        "public_base_url": public_base_url,
        **({"api_base_url": api_base_url} if api_base_url else {}),
    }
    if kind != "twilio-voice" or "from_number" in extra:
        values["from_number"] = extra.pop("from_number", "+15555550100")
    values.update(extra)
    names = {"twilio-sms": "SMS", "twilio-whatsapp": "WhatsApp", "twilio-voice": "Phone"}
    return channels.create_channel(kind=kind, name=names[kind], team=team, channel_settings=values)


def post_signed(client: Any, channel: Any, endpoint: str, body: str, *, query: str = "", signature: str | None = None):
    """POST a form webhook through Django's test client, signed for the channel's public URL."""
    path = f"/hooks/{channel.key}/{endpoint}/" + (f"?{query}" if query else "")
    url = channel.settings["public_base_url"].rstrip("/") + path
    if signature is None:
        signature = RequestValidator(channel.settings["auth_token"]).compute_signature(url, form(body))
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return client.post(path, data=body, content_type="application/x-www-form-urlencoded", headers=headers)


def http_poster(fake: FakeTwilio):
    """For :func:`connectors.twilio.simulate.walk_call`: post signed requests over real HTTP."""

    def post(url: str, params: dict[str, str]) -> str:
        response = fake.send_webhook(url, params)
        response.raise_for_status()
        return response.text

    return post
