"""Inbound-parse webhooks, as alternatives to IMAP: Mailgun routes and Postmark inbound.

* **Mailgun** (endpoint ``inbound-parse``): a route's ``forward()`` POST, verified on its signature
  (hex HMAC-SHA256 of ``timestamp + token`` with the webhook signing key, recent timestamps only).
* **Postmark** (endpoint ``postmark-inbound``): the inbound webhook's JSON, which Postmark signs with
  nothing; it is protected by HTTP Basic auth in the URL you give Postmark
  (``https://user:password@…/postmark-inbound/``), checked with django-anymail's own basic-auth
  check against the channel's ``postmark_inbound_auth`` (``user:password``).

Both are stored raw and later turned back into one RFC 822 message with django-anymail's
``AnymailInboundMessage`` (the provider's raw MIME when it sends it, else the parsed fields), so
that they are read by exactly the same code as a message fetched over IMAP.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import time
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, QueryDict
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.datastructures import MultiValueDict

from connectors.email import dedupe
from connectors.email.imap import dedupe_key as raw_key
from connectors.email.parsing import message_ids
from inbox.transport import ConfigurationError, InvalidRequest

logger = logging.getLogger(__name__)

# The fields of a Mailgun route POST that are the mail (not the POST's token, timestamp, signature).
MAILGUN_MAIL_FIELDS = ("from", "sender", "subject", "body-plain", "body-html", "attachment-count")
# Mailgun signs the time it posted; older requests are replays.
MAX_AGE_SECONDS = 15 * 60


def signature(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify(request: HttpRequest, key: str, *, scope: str = "", now: float | None = None) -> None:
    """Mailgun's signature, a timestamp inside the window, and no replay of a signature with other content.

    The signature covers only ``timestamp + token``, not the mail: whoever captures one signed POST
    could post other mail with it until the timestamp leaves the window. So each (token, timestamp)
    is remembered in the cache (Redis) for the window, with a digest of the body it came with; the
    same pair with another body is refused. The very same body again is Mailgun retrying after an
    error on our side: it is let through and collapses on its dedupe key, so a retry is never lost.
    """
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
    _refuse_replay(request, scope=scope, timestamp=timestamp, token=token)


def _refuse_replay(request: HttpRequest, *, scope: str, timestamp: str, token: str) -> None:
    seen = hashlib.sha256(f"{scope}:{timestamp}:{token}".encode()).hexdigest()
    cache_key = f"email:mailgun-token:{seen}"
    digest = hashlib.sha256(_posted_content(request)).hexdigest()
    # Kept while the timestamp can still pass the window check (both sides of now), and a minute more.
    if cache.add(cache_key, digest, timeout=2 * MAX_AGE_SECONDS + 60):
        return
    if cache.get(cache_key) != digest:
        logger.warning("a Mailgun signature was replayed with other content (token %s…)", token[:8])
        raise InvalidRequest("signature already used for another message", status=403)


def _posted_content(request: HttpRequest) -> bytes:
    """What a POST says, whatever its encoding: its fields and files in order (a retry of one POST
    may come with another multipart boundary or field order, and is still the same content)."""
    parts = [json.dumps(sorted(request.POST.lists())).encode()]
    for name in sorted(request.FILES):
        for upload in request.FILES.getlist(name):
            digest = hashlib.sha256()
            for chunk in upload.chunks():
                digest.update(chunk)
            upload.seek(0)
            parts.append(f"{name}:{digest.hexdigest()}".encode())
    return b"\n".join(parts)


def dedupe_key(request: HttpRequest) -> str:
    """By Message-ID with a digest of the mail's fields (:mod:`.dedupe`): Mailgun retrying a POST
    with a new token is one event, another mail under the same Message-ID is another."""

    post = request.POST
    if post.get("body-mime"):
        return raw_key(str(post["body-mime"]).encode("utf-8", "surrogateescape"))
    for name, value in _headers(post):
        if name.lower() == "message-id":
            ids = message_ids(value)
            if ids:
                fields = [str(post.get(field, "")) for field in MAILGUN_MAIL_FIELDS]
                files = [
                    b"".join(upload.chunks()) for key in sorted(request.FILES) for upload in request.FILES.getlist(key)
                ]
                return dedupe.mail_key(ids[0], dedupe.fields_digest(fields, files))
    return "mailgun:" + post.get("token", "")


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


# -- Postmark ---------------------------------------------------------------------------------------


def _postmark_view(auth: str) -> Any:
    """django-anymail's Postmark inbound view, used for its basic-auth check and its parser."""
    from anymail.webhooks.postmark import PostmarkInboundWebhookView  # type: ignore[import-untyped]

    return PostmarkInboundWebhookView(webhook_secret=[auth])


def verify_postmark(request: HttpRequest, auth: str) -> None:
    from anymail.exceptions import AnymailWebhookValidationFailure  # type: ignore[import-untyped]

    if not auth or ":" not in auth:
        raise ConfigurationError("postmark_inbound_auth (user:password) is not set for this channel")
    if request.method != "POST":
        raise InvalidRequest("POST only", status=405)
    try:
        _postmark_view(auth).validate_request(request)
    except AnymailWebhookValidationFailure as exc:
        raise InvalidRequest("missing or wrong basic auth", status=403) from exc


def _postmark_payload(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("not a Postmark inbound message (not a JSON object)")
    return payload


def postmark_dedupe_key(body: bytes) -> str:
    """By Message-ID with a digest of the mail (:mod:`.dedupe`; the raw mail's when Postmark sends
    it, as IMAP), else Postmark's own id."""

    payload = _postmark_payload(body)
    if isinstance(payload.get("RawEmail"), str) and payload["RawEmail"]:
        return raw_key(payload["RawEmail"].encode("utf-8", "surrogateescape"))
    for item in payload.get("Headers") or []:
        if isinstance(item, dict) and str(item.get("Name", "")).lower() == "message-id":
            ids = message_ids(str(item.get("Value", "")))
            if ids:
                full = payload.get("FromFull")
                sender = full if isinstance(full, dict) else {}
                fields = [str(sender.get("Email") or payload.get("From", ""))]
                fields += [str(payload.get(name, "")) for name in ("Subject", "TextBody", "HtmlBody")]
                files = [
                    str(a.get("Content", "")).encode() for a in payload.get("Attachments") or [] if isinstance(a, dict)
                ]
                return dedupe.mail_key(ids[0], dedupe.fields_digest(fields, files))
    return "postmark:" + str(payload.get("MessageID", "")) if payload.get("MessageID") else ""


def postmark_to_mime(body: bytes) -> tuple[bytes, dict[str, Any]]:
    """The stored Postmark JSON as RFC 822 bytes, plus its hints (``stripped_text``)."""
    payload = _postmark_payload(body)
    if payload.get("RecordType", "Inbound") != "Inbound" or not (
        payload.get("RawEmail") or payload.get("FromFull") or payload.get("From")
    ):
        raise InvalidRequest("not a Postmark inbound message (no RawEmail or FromFull)")
    try:
        message = _postmark_view("parse:only").esp_to_anymail_event(payload).message
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidRequest(f"unreadable Postmark inbound message: {exc}") from exc
    # What Postmark keeps beside the message: the envelope sender (an empty one marks automatic
    # mail) and the address it was delivered to (a reply address hidden in Bcc still threads).
    if message.envelope_sender is not None and "Return-Path" not in message:
        message["Return-Path"] = f"<{message.envelope_sender}>"
    if message.envelope_recipient and "Delivered-To" not in message:
        message["Delivered-To"] = message.envelope_recipient
    return bytes(message.as_bytes()), {"stripped_text": message.stripped_text or ""}
