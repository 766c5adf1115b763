"""A local stand-in for Meta's Graph API and its webhooks: a real HTTP server on 127.0.0.1.

It speaks what our code calls (docs/connectors/meta.md), under ``/<version>/`` (v25.0):

- ``POST /{phone_number_id}/messages`` (WhatsApp Cloud: text, media by id or link, templates,
  mark-as-read) → ``{"messaging_product", "contacts": [{input, wa_id}], "messages": [{id}]}``;
  a template must be in :attr:`FakeGraph.templates` (else 132001); free-form text to a number in
  :attr:`FakeGraph.closed_windows` is accepted, then fails with 131047 in a status callback.
- ``POST /{phone_number_id}/media`` (multipart upload) → ``{"id"}``.
- ``GET /{media_id}`` → ``{url, mime_type, sha256, file_size, id, messaging_product}``; the URL
  (``/media-download/{id}``) serves the bytes, both only with the token.
- ``GET /{waba_id}/message_templates`` (paged by ``after``).
- ``POST /{page_id}/messages`` (Messenger and Instagram Send API, JSON or multipart ``filedata``)
  → ``{recipient_id, message_id}``.
- ``GET /{psid}?fields=…`` → the profile in :attr:`FakeGraph.profiles`.
- ``GET /cdn/{name}`` → a Messenger attachment on "Meta's CDN" (no token needed).

Every call needs one of :attr:`FakeGraph.tokens` as ``Authorization: Bearer`` (else 401, code 190).
:meth:`FakeGraph.fail_next` queues errors for the next send: a Graph error code (``"130429"``,
``"131047"``, ``"190"``, ``"613"``, ``"4"``, ``"80007"``, ``"131026"``, ``"551"``…), ``"500"`` or
``"timeout"`` (the message IS accepted, but the answer comes too late).

Towards Parley it signs callbacks with the app secret exactly as Meta does (``X-Hub-Signature-256``
over the raw bytes) and posts them: :meth:`FakeGraph.post_callback`. After a WhatsApp send it posts
the statuses in :attr:`FakeGraph.callbacks` to :attr:`FakeGraph.webhook_url` in one batched
callback (in the order given: repeat or reorder to test), optionally before the send's answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.fakes.http import LocalServer, send_json

VERSION = "v25.0"
APP_SECRET = "test_app_secret"
ACCESS_TOKEN = "EAAG-whatsapp-system-user-token"
PAGE_TOKEN = "EAAG-messenger-page-token"
INSTAGRAM_TOKEN = "IGAA-instagram-token"
WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15555550100"
CUSTOMER_WA_ID = "15005550006"
PAGE_ID = "111122223333444"
PSID = "6100000000000001"
INSTAGRAM_ID = "17841400000000001"
IGSID = "1790000000000001"
FIXTURES = Path(__file__).resolve().parent.parent / "connectors" / "fixtures" / "meta"

ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "130429": (400, {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429}),
    "131047": (
        400,
        {
            "message": "(#131047) Re-engagement message",
            "type": "OAuthException",
            "code": 131047,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
            },
        },
    ),
    "131026": (400, {"message": "(#131026) Message undeliverable", "type": "OAuthException", "code": 131026}),
    "190": (
        401,
        {
            "message": "Error validating access token: Session has expired.",
            "type": "OAuthException",
            "code": 190,
            "error_subcode": 463,
        },
    ),
    "613": (
        400,
        {"message": "(#613) Calls to this api have exceeded the rate limit.", "type": "OAuthException", "code": 613},
    ),
    "4": (
        400,
        {
            "message": "(#4) Application request limit reached",
            "type": "OAuthException",
            "code": 4,
            "is_transient": True,
        },
    ),
    "80007": (
        400,
        {
            "message": "(#80007) There have been too many calls to this WhatsApp Business account.",
            "type": "OAuthException",
            "code": 80007,
        },
    ),
    "551": (
        400,
        {
            "message": "(#551) This person isn't available right now.",
            "type": "OAuthException",
            "code": 551,
            "error_subcode": 1545041,
        },
    ),
    "2018278": (
        400,
        {
            "message": "(#10) This message is sent outside of allowed window.",
            "type": "OAuthException",
            "code": 10,
            "error_subcode": 2018278,
        },
    ),
    "500": (
        500,
        {"message": "An unknown error has occurred.", "type": "OAuthException", "code": 1, "is_transient": True},
    ),
}


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)


@dataclass
class FakeGraph(LocalServer):
    version: str = VERSION
    app_secret: str = APP_SECRET
    tokens: set[str] = field(default_factory=lambda: {ACCESS_TOKEN, PAGE_TOKEN, INSTAGRAM_TOKEN})
    # Seconds a "timeout" answer is held back (longer than the client's timeout).
    slow_seconds: float = 3.0
    calls: list[Call] = field(default_factory=list)
    # Messages sent (WhatsApp and Messenger alike): the request's JSON (or form) plus "id".
    sent: list[dict[str, Any]] = field(default_factory=list)
    read_marks: list[str] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    cdn: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Objects a channel routes by (phone number ids, pages): id -> their fields, for ``GET /{id}``.
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: list[dict[str, Any]] = field(default_factory=list)
    closed_windows: set[str] = field(default_factory=set)
    # Where WhatsApp status callbacks go after a send ('' for none), and which (batched, in order).
    webhook_url: str = ""
    callbacks: list[str] = field(default_factory=lambda: ["sent", "delivered"])
    callbacks_before_answer: bool = False
    callback_results: list[int] = field(default_factory=list)
    _failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control ------------------------------------------------------------------------------

    def fail_next(self, *modes: str) -> None:
        with self._lock:
            self._failures.extend(modes)

    def add_media(self, media_id: str, content: bytes, content_type: str) -> str:
        self.media[media_id] = (content, content_type)
        return media_id

    def add_cdn(self, name: str, content: bytes, content_type: str) -> str:
        self.cdn[name] = (content, content_type)
        return f"{self.root}/cdn/{name}"

    @property
    def root(self) -> str:
        return self.base_url.rstrip("/")

    # -- webhooks towards Parley --------------------------------------------------------------

    def sign(self, body: bytes, secret: str | None = None) -> str:
        return "sha256=" + hmac.new((secret or self.app_secret).encode(), body, hashlib.sha256).hexdigest()

    def post_callback(self, url: str, payload: Any, *, signature: str | None = None) -> httpx.Response:
        """POST a callback signed like Meta (or with the given, possibly forged, signature)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": self.sign(body) if signature is None else signature,
            "User-Agent": "facebookexternalua",
        }
        return httpx.post(url, content=body, headers=headers, timeout=10)

    def _statuses(self, sent: dict[str, Any], failed: bool) -> None:
        if not self.webhook_url:
            return
        statuses = []
        for status in ["sent", "failed"] if failed else self.callbacks:
            item: dict[str, Any] = {
                "id": sent["id"],
                "status": status,
                "timestamp": str(int(time.time())),
                "recipient_id": sent.get("to", ""),
            }
            if sent.get("biz_opaque_callback_data"):
                item["biz_opaque_callback_data"] = sent["biz_opaque_callback_data"]
            if status == "failed":
                item["errors"] = [
                    {
                        "code": 131047,
                        "title": "Re-engagement message",
                        "message": "Re-engagement message",
                        "error_data": {"details": ERRORS["131047"][1]["error_data"]["details"]},
                    }
                ]
            statuses.append(item)
        payload = wa_callback(wa_value(statuses=statuses))
        try:
            self.callback_results.append(self.post_callback(self.webhook_url, payload).status_code)
        except httpx.HTTPError:
            self.callback_results.append(0)

    # -- the Graph API -------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        call = Call(method=method, path=parts.path, query=parse_qs(parts.query), headers=dict(handler.headers.items()))
        content_type = handler.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            call.json = json.loads(raw or b"null")
        elif content_type.startswith("multipart/form-data"):
            call.form, call.files = _multipart(content_type, raw)
        elif content_type.startswith("application/x-www-form-urlencoded"):
            call.form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        with self._lock:
            self.calls.append(call)
        if parts.path.startswith("/cdn/") and method == "GET":
            found = self.cdn.get(parts.path.removeprefix("/cdn/"))
            return _bytes(handler, found) if found else send_json(handler, 404, {})
        if not self._authorised(call):
            return send_json(
                handler,
                401,
                {
                    "error": {
                        "message": "Invalid OAuth access token - Cannot parse access token",
                        "type": "OAuthException",
                        "code": 190,
                        "fbtrace_id": "Afake",
                    }
                },
            )
        if parts.path.startswith("/media-download/") and method == "GET":
            found = self.media.get(parts.path.removeprefix("/media-download/"))
            return _bytes(handler, found) if found else send_json(handler, 404, {})
        prefix = f"/{self.version}/"
        if not parts.path.startswith(prefix):
            return _graph_error(
                handler, 400, {"message": "Unknown path components", "type": "OAuthException", "code": 2500}
            )
        node, _sep, edge = parts.path.removeprefix(prefix).partition("/")
        if method == "POST" and edge == "messages":
            if isinstance(call.json, dict) and call.json.get("messaging_product") == "whatsapp":
                return self._whatsapp_send(handler, call.json)
            return self._page_send(handler, call)
        if method == "POST" and edge == "media":
            media_id = str(10**15 + len(self.media) + 1)
            upload = call.files.get("file")
            if upload is None:
                return _graph_error(
                    handler,
                    400,
                    {"message": "(#100) The parameter file is required", "type": "OAuthException", "code": 100},
                )
            self.media[media_id] = (upload[1], upload[2])
            return send_json(handler, 200, {"id": media_id})
        if method == "GET" and edge == "message_templates":
            return self._templates(handler, call)
        if method == "GET" and not edge and node in self.media:
            content, media_type = self.media[node]
            return send_json(
                handler,
                200,
                {
                    "messaging_product": "whatsapp",
                    "url": f"{self.root}/media-download/{node}",
                    "mime_type": media_type,
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "file_size": len(content),
                    "id": node,
                },
            )
        if method == "GET" and not edge and node in self.nodes:
            return send_json(handler, 200, {"id": node, **self.nodes[node]})
        if method == "GET" and not edge and node in self.profiles:
            fields = (call.query.get("fields") or [""])[0].split(",")
            profile = self.profiles[node]
            return send_json(handler, 200, {"id": node, **{k: v for k, v in profile.items() if k in fields}})
        return _graph_error(
            handler,
            400,
            {
                "message": f"Unsupported {method} request. Object with ID '{node}' does not exist",
                "type": "GraphMethodException",
                "code": 100,
                "error_subcode": 33,
            },
        )

    def _authorised(self, call: Call) -> bool:
        given = call.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        given = given or (call.query.get("access_token") or [""])[0]
        return given in self.tokens

    def _failure(self) -> str:
        with self._lock:
            return self._failures.pop(0) if self._failures else ""

    def _whatsapp_send(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if body.get("status") == "read":
            self.read_marks.append(str(body.get("message_id", "")))
            return send_json(handler, 200, {"success": True})
        mode = self._failure()
        if mode in ERRORS:
            status, error = ERRORS[mode]
            headers = {"Retry-After": "1"} if mode == "130429" else None
            return _graph_error(handler, status, error, headers)
        kind = body.get("type", "text")
        if kind == "template":
            template = body.get("template") or {}
            known = {(t["name"], t["language"]) for t in self.templates}
            if (template.get("name"), (template.get("language") or {}).get("code")) not in known:
                return _graph_error(
                    handler,
                    404,
                    {
                        "message": "(#132001) Template name does not exist in the translation",
                        "type": "OAuthException",
                        "code": 132001,
                    },
                )
        if kind == "text" and len((body.get("text") or {}).get("body", "")) > 4096:
            return _graph_error(
                handler,
                400,
                {
                    "message": "(#100) Param text['body'] must be at most 4096 characters long.",
                    "type": "OAuthException",
                    "code": 100,
                },
            )
        to = str(body.get("to", ""))
        sent = {**body, "id": "wamid.HBgL" + secrets.token_hex(12).upper() + "="}
        failed = kind != "template" and to in self.closed_windows
        with self._lock:
            self.sent.append(sent)
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": sent["id"], **({"message_status": "accepted"} if kind == "template" else {})}],
        }
        if self.callbacks_before_answer:
            self._statuses(sent, failed)
        if mode == "timeout":
            time.sleep(self.slow_seconds)
        send_json(handler, 200, answer)
        if not self.callbacks_before_answer:
            threading.Thread(target=self._statuses, args=(sent, failed), daemon=True).start()
        return None

    def _page_send(self, handler: BaseHTTPRequestHandler, call: Call) -> None:
        body: dict[str, Any] = call.json if isinstance(call.json, dict) else {}
        if not body and call.form:
            body = {k: (json.loads(v) if k in ("recipient", "message") else v) for k, v in call.form.items()}
        recipient = str((body.get("recipient") or {}).get("id", ""))
        if body.get("sender_action"):
            return send_json(handler, 200, {"recipient_id": recipient})
        mode = self._failure()
        if mode in ERRORS:
            status, error = ERRORS[mode]
            return _graph_error(handler, status, error)
        text = (body.get("message") or {}).get("text", "")
        if len(text) > 2000:
            return _graph_error(
                handler,
                400,
                {
                    "message": "(#100) Length of param message[text] must be less than or equal to 2000",
                    "type": "OAuthException",
                    "code": 100,
                },
            )
        sent = {**body, "id": "m_" + secrets.token_urlsafe(24), "files": sorted(call.files)}
        with self._lock:
            self.sent.append(sent)
        if mode == "timeout":
            time.sleep(self.slow_seconds)
        return send_json(handler, 200, {"recipient_id": recipient, "message_id": sent["id"]})

    def _templates(self, handler: BaseHTTPRequestHandler, call: Call) -> None:
        after = int((call.query.get("after") or ["0"])[0] or 0)
        limit = min(int((call.query.get("limit") or ["25"])[0]), 2)  # small pages, to walk the paging
        page = self.templates[after : after + limit]
        paging: dict[str, Any] = {"cursors": {"before": str(after), "after": str(after + len(page))}}
        if after + limit < len(self.templates):
            paging["next"] = f"{self.root}{call.path}?after={after + limit}"
        data = [
            {
                "id": t.get("id", str(9000 + n)),
                "name": t["name"],
                "language": t["language"],
                "status": t.get("status", "APPROVED"),
                "category": t.get("category", "UTILITY"),
                "components": t.get("components") or [{"type": "BODY", "text": t.get("body", "")}],
            }
            for n, t in enumerate(page, start=after)
        ]
        return send_json(handler, 200, {"data": data, "paging": paging})


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    form: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            files[str(name)] = (part.get_filename() or "", payload, part.get_content_type())
        else:
            form[str(name)] = payload.decode()
    return form, files


def _bytes(handler: BaseHTTPRequestHandler, found: tuple[bytes, str]) -> None:
    content, content_type = found
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(content)))
    handler.end_headers()
    handler.wfile.write(content)


def _graph_error(
    handler: BaseHTTPRequestHandler, status: int, error: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    send_json(handler, status, {"error": {**error, "fbtrace_id": "A" + secrets.token_hex(8)}}, headers)


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeGraph]:
    fake = FakeGraph(**kwargs).start()
    try:
        yield fake
    finally:
        fake.stop()


# -- payloads (the documented field names; CHANNELS.md §14.6-14.7 as fixtures) -----------------------


def fixture_bytes(name: str) -> bytes:
    """A captured callback exactly as Meta would send it (the signature covers these bytes)."""
    return (FIXTURES / name).read_bytes().strip()


def wa_callback(*values: dict[str, Any], waba_id: str = WABA_ID, field_name: str = "messages") -> dict[str, Any]:
    changes = [{"field": field_name, "value": value} for value in values]
    return {"object": "whatsapp_business_account", "entry": [{"id": waba_id, "changes": changes}]}


def wa_value(
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    contacts: list[dict[str, Any]] | None = None,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": phone_number_id},
    }
    if contacts is not None:
        value["contacts"] = contacts
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return value


def wa_contact(wa_id: str = CUSTOMER_WA_ID, name: str = "Alice Customer", user_id: str = "") -> dict[str, Any]:
    contact: dict[str, Any] = {"profile": {"name": name}}
    if wa_id:
        contact["wa_id"] = wa_id
    if user_id:
        contact["user_id"] = user_id
    return contact


def wa_message(wamid: str, kind: str = "text", sender: str = CUSTOMER_WA_ID, **content: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"from": sender, "id": wamid, "timestamp": str(int(time.time())), "type": kind}
    if kind == "text" and "body" in content:
        message["text"] = {"body": content.pop("body")}
    message.update(content)
    return message


def wa_text_callback(
    wamid: str,
    body: str,
    *,
    wa_id: str = CUSTOMER_WA_ID,
    name: str = "Alice Customer",
    user_id: str = "",
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    sender = wa_id or user_id
    return wa_callback(
        wa_value(
            phone_number_id=phone_number_id,
            contacts=[wa_contact(wa_id, name, user_id)],
            messages=[wa_message(wamid, "text", sender, body=body)],
        )
    )


def page_callback(
    *events: dict[str, Any], object_type: str = "page", page_id: str = PAGE_ID, source: str = "messaging"
) -> dict[str, Any]:
    return {"object": object_type, "entry": [{"id": page_id, "time": int(time.time() * 1000), source: list(events)}]}


def page_message(
    mid: str, text: str = "", *, sender: str = PSID, page_id: str = PAGE_ID, **message: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"mid": mid, **message}
    if text:
        body["text"] = text
    return {
        "sender": {"id": sender},
        "recipient": {"id": page_id},
        "timestamp": int(time.time() * 1000),
        "message": body,
    }


# -- helpers for tests ---------------------------------------------------------------------------

PUBLIC_BASE_URL = "https://inbox.example.test"


def meta_channel(kind: str, *, team: Any, graph: str = "", public_base_url: str = PUBLIC_BASE_URL, **extra: Any) -> Any:
    """A WhatsApp Cloud, Messenger or Instagram channel with the stand-in's credentials."""
    from inbox.services import channels

    values: dict[str, Any] = {
        "app_secret": APP_SECRET,
        "verify_token": "verify-me-123",
        "public_base_url": public_base_url,
    }
    if graph:
        values["graph_base_url"] = graph
    names = {"whatsapp-cloud": "WhatsApp", "messenger": "Messenger", "instagram": "Instagram"}
    if kind == "whatsapp-cloud":
        values.update({"phone_number_id": PHONE_NUMBER_ID, "access_token": ACCESS_TOKEN, "waba_id": WABA_ID})
    elif kind == "messenger":
        values.update({"page_id": PAGE_ID, "page_token": PAGE_TOKEN})
    else:
        values.update({"instagram_id": INSTAGRAM_ID, "access_token": INSTAGRAM_TOKEN})
    name = extra.pop("name", names[kind])
    values.update(extra)
    return channels.create_channel(kind=kind, name=name, team=team, channel_settings=values)


def post_callback(
    client: Any, channel: Any, payload: Any, *, signature: str | None = None, secret: str = APP_SECRET
) -> Any:
    """POST a callback to the channel's webhook through Django's test client, signed like Meta."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if signature is None:
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": signature} if signature else {}
    return client.post(f"/hooks/{channel.key}/webhook/", data=body, content_type="application/json", headers=headers)
