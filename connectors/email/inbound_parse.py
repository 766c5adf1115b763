"""Mailgun's inbound-parse webhook (a route's ``forward()``), as an alternative to IMAP.

The POST is verified on its signature (hex HMAC-SHA256 of ``timestamp + token`` with the webhook
signing key), stored raw, and later turned back into one RFC 822 message with django-anymail's
``AnymailInboundMessage`` (Mailgun's ``body-mime`` when the route asks for MIME, else the parsed
fields), so that it is read by exactly the same code as a message fetched over IMAP.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from typing import Any

from django.http import HttpRequest, QueryDict
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.datastructures import MultiValueDict

from inbox.transport import ConfigurationError, InvalidRequest

# Mailgun signs the time it posted; older requests are replays.
MAX_AGE_SECONDS = 15 * 60


def signature(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify(request: HttpRequest, key: str, *, now: float | None = None) -> None:
    if not key:
        raise ConfigurationError("mailgun_signing_key is not set for this channel")
    if request.method != "POST":
        raise InvalidRequest("POST only", status=405)
    request.body  # noqa: B018 - read the raw bytes before Django parses the form from them
    timestamp = request.POST.get("timestamp", "")
    token = request.POST.get("token", "")
    given = request.POST.get("signature", "")
    if not (timestamp and token and given):
        raise InvalidRequest("missing signature fields", status=403)
    if not hmac.compare_digest(given, signature(key, timestamp, token)):
        raise InvalidRequest("bad signature", status=403)
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError as exc:
        raise InvalidRequest("bad timestamp", status=403) from exc
    if age > MAX_AGE_SECONDS:
        raise InvalidRequest("stale timestamp", status=403)


def dedupe_key(request: HttpRequest) -> str:
    """By Message-ID when the headers name one (so a mailbox both polled and forwarded stays single)."""
    from connectors.email.connector import message_id_key
    from connectors.email.parsing import message_ids

    for name, value in _headers(request.POST):
        if name.lower() == "message-id":
            ids = message_ids(value)
            if ids:
                return message_id_key(ids[0])
    return "mailgun:" + request.POST.get("token", "")


def _headers(post: Any) -> list[tuple[str, str]]:
    try:
        pairs = json.loads(post.get("message-headers", "[]"))
    except json.JSONDecodeError:
        return []
    return [(str(p[0]), str(p[1])) for p in pairs if isinstance(p, list) and len(p) == 2]


def _form(body: bytes, content_type: str) -> tuple[QueryDict, MultiValueDict[str, Any]]:
    if content_type.startswith("multipart/"):
        from django.core.files.uploadhandler import MemoryFileUploadHandler

        meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
        handler = MemoryFileUploadHandler()
        handler.chunk_size = 64 * 1024
        try:
            post, files = MultiPartParser(meta, io.BytesIO(body), [handler], "utf-8").parse()
        except MultiPartParserError as exc:
            raise InvalidRequest(f"broken multipart body: {exc}") from exc
        return post, files
    return QueryDict(body, encoding="utf-8"), MultiValueDict()


def to_mime(body: bytes, content_type: str) -> tuple[bytes, dict[str, Any]]:
    """The stored POST as RFC 822 bytes, plus Mailgun's hints (``stripped_text``)."""
    from anymail.inbound import AnymailInboundMessage  # type: ignore[import-untyped]

    # The stored content type may lack the boundary parameter when it was kept short; find it.
    if content_type == "multipart/form-data" or (
        content_type.startswith("multipart/") and "boundary" not in content_type
    ):
        first = body.split(b"\r\n", 1)[0]
        content_type = f"multipart/form-data; boundary={first[2:].decode('ascii', 'replace')}"
    post, files = _form(body, content_type)
    hints = {"stripped_text": post.get("stripped-text", "")}
    if post.get("body-mime"):
        return str(post["body-mime"]).encode("utf-8", "surrogateescape"), hints
    if "message-headers" not in post and "from" not in post:
        raise InvalidRequest("not a Mailgun inbound message (no message-headers)")
    headers = _headers(post) or [
        (name, str(post[field]))
        for name, field in (("From", "from"), ("To", "recipient"), ("Subject", "subject"))
        if post.get(field)
    ]
    try:
        content_ids = {v: k for k, v in json.loads(post.get("content-id-map", "{}") or "{}").items()}
    except (json.JSONDecodeError, AttributeError):
        content_ids = {}
    attachments = []
    try:
        count = int(post.get("attachment-count", "0") or 0)
    except ValueError:
        count = 0
    for n in range(1, count + 1):
        upload = files.get(f"attachment-{n}")
        if upload is not None:
            cid = content_ids.get(f"attachment-{n}")
            attachments.append(AnymailInboundMessage.construct_attachment_from_uploaded_file(upload, content_id=cid))
    message = AnymailInboundMessage.construct(
        headers=headers,
        text=post.get("body-plain") or None,
        html=post.get("body-html") or None,
        attachments=attachments or None,
    )
    return bytes(message.as_bytes()), hints
