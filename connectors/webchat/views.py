"""The widget over plain HTTP: its script, the fallback transport, uploads and attachments.

``/webchat/<key>/frames/`` takes the same frames as the socket (each carrying the visitor's
``token``) and answers with the frame the socket would send; ``/webchat/<key>/poll/`` holds the
request until there are messages after the widget's last id (long polling), for browsers behind
proxies that refuse websockets. Every endpoint answers only the channel's allowed origins (CORS),
takes JSON as ``text/plain`` so browsers send it without a preflight, and never uses cookies.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from connectors.webchat import presence, protocol, push, ratelimit, selectors, services, sessions
from connectors.webchat.connector import WebchatConnector
from connectors.webchat.protocol import ProtocolError
from inbox.models import Attachment, Channel, Operator
from inbox.transport import InboundAttachment

logger = logging.getLogger(__name__)

POLL_SECONDS = 25.0  # a long poll answers after this long at most (proxies cut idle requests near 30-60 s)
JSON_BODY_BYTES = 64 * 1024


# -- the script ---------------------------------------------------------------------------------------


@cache
def _script(version: str) -> tuple[bytes, bytes]:
    path = finders.find(f"webchat/parley-webchat.{version}.js")
    if not path or version != protocol.WIDGET_VERSION:
        raise Http404("no such widget version")
    body = Path(str(path)).read_bytes()
    return body, gzip.compress(body, compresslevel=9, mtime=0)


@require_GET
def script(request: HttpRequest, version: str) -> HttpResponse:
    """The widget's script under its versioned name, cached for a year (a new version is a new name)."""
    body, compressed = _script(version)
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
    response = HttpResponse(compressed if gzipped else body, content_type="text/javascript; charset=utf-8")
    if gzipped:
        response["Content-Encoding"] = "gzip"
    response["Vary"] = "Accept-Encoding"
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


# -- CORS and errors ------------------------------------------------------------------------------------


def _cors(response: HttpResponseBase, origin: str) -> HttpResponseBase:
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Content-Type"
    response["Access-Control-Max-Age"] = "86400"
    response["Vary"] = "Origin"
    response["Cache-Control"] = "no-store"
    return response


def _error(error: ProtocolError, origin: str = "") -> HttpResponseBase:
    response = JsonResponse(error.frame(), status=error.status)
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    return _cors(response, origin) if origin else response


def _channel_and_origin(request: HttpRequest, key: str) -> tuple[Channel, str]:
    """The channel and the request's allowed origin; raises a 404 or 403 :class:`ProtocolError`."""
    channel = selectors.channel_by_key(key)
    if channel is None:
        raise ProtocolError("unknown_channel", "No website chat here.", status=404)
    origin = request.headers.get("Origin", "")
    if not protocol.origin_allowed(channel, origin):
        raise ProtocolError("origin_refused", "This site may not use this chat.", status=403)
    return channel, origin


def _address(request: HttpRequest) -> str:
    return sessions.client_address([request.META.get("REMOTE_ADDR", "")], request.headers.get("X-Forwarded-For", ""))


def _json(request: HttpRequest) -> dict[str, Any]:
    if len(request.body) > JSON_BODY_BYTES:
        raise ProtocolError("too_large", "The request is too large.", status=413)
    try:
        content = json.loads(request.body or b"null")
    except ValueError:
        content = None
    if not isinstance(content, dict):
        raise ProtocolError("bad_json", "The body must be a JSON object.")
    return content


def _visitor(channel: Channel, content: Mapping[str, Any]) -> str:
    visitor = protocol.read_token(channel, content.get("token"))
    if visitor is None:
        raise ProtocolError("bad_token", "The visitor token is missing or invalid: say hello again.", status=401)
    return visitor


def _preflight(request: HttpRequest, key: str) -> HttpResponseBase | None:
    if request.method == "OPTIONS":
        try:
            _channel, origin = _channel_and_origin(request, key)
        except ProtocolError as error:
            return HttpResponse(status=error.status)
        return _cors(HttpResponse(status=204), origin)
    if request.method != "POST":
        return _error(ProtocolError("method", "Use POST.", status=405))
    return None


# -- trying the widget (staff and the channel's team) ---------------------------------------------------


def demo_origins() -> list[str]:
    """Parley's own origin (and its localhost twin), for a channel to try on /webchat/try/."""
    base = protocol.normalise_origin(settings.PUBLIC_BASE_URL)
    twins = {base, base.replace("://127.0.0.1", "://localhost"), base.replace("://localhost", "://127.0.0.1")}
    return sorted(twins)


@login_required
@require_GET
def try_widget(request: HttpRequest) -> HttpResponse:
    """Parley's own page with a website chat embedded, to try it as a visitor would (and copy the snippet)."""
    operator = request.user
    assert isinstance(operator, Operator)  # noqa: S101 - login_required
    visible = list(Channel.objects.visible_to(operator).filter(kind="webchat", is_active=True).order_by("name", "pk"))
    chosen = visible[0] if visible else None
    wanted = request.GET.get("channel", "")
    if wanted:
        chosen = next((c for c in visible if str(c.pk) == wanted), None)
        if chosen is None:
            raise Http404("no such website chat")
    connector = WebchatConnector(chosen) if chosen is not None else None
    origin = request.build_absolute_uri("/").rstrip("/")
    context = {
        "channels": visible,
        "chosen": chosen,
        "snippet": connector.snippet() if connector else "",
        "script": f"/webchat/{protocol.WIDGET_SCRIPT.rsplit('/', 1)[1]}",
        "allowed_here": bool(chosen and protocol.origin_allowed(chosen, origin)),
        "origin": origin,
    }
    return render(request, "webchat/try.html", context)


# -- the fallback transport ---------------------------------------------------------------------------


@csrf_exempt
async def frames(request: HttpRequest, key: str) -> HttpResponseBase:
    """One frame of the socket's protocol over HTTP; the answer is the frame the socket would send."""
    early: HttpResponseBase | None = await database_sync_to_async(_preflight)(request, key)
    if early is not None:
        return early
    origin = ""
    try:
        channel, origin = await database_sync_to_async(_channel_and_origin)(request, key)
        content = _json(request)
        visitor = None if content.get("type") in ("hello", "ping") else _visitor(channel, content)
        session = sessions.Session(channel, _address(request), visitor)
        answer, echo = await session.on_frame(content)
    except ProtocolError as error:
        return _error(error, origin)
    if echo is not None and session.visitor is not None:
        await push.apush(channel.pk, session.visitor, {"type": "webchat.message", "message": echo})
    return _cors(JsonResponse(answer or {"type": "ok"}), origin)


@csrf_exempt
async def poll(request: HttpRequest, key: str) -> HttpResponseBase:
    """``{"token", "after"}`` → ``{"type": "messages", "messages": [...]}`` once there are any after
    ``after``, or empty after ``POLL_SECONDS``."""
    early: HttpResponseBase | None = await database_sync_to_async(_preflight)(request, key)
    if early is not None:
        return early
    origin = ""
    try:
        channel, origin = await database_sync_to_async(_channel_and_origin)(request, key)
        content = _json(request)
        visitor = _visitor(channel, content)
        after = sessions.resume_point(content.get("after")) or 0
        have = sessions.message_ids(content.get("have"))
        # A poll holds a request open for up to POLL_SECONDS: an address gets a bounded number.
        await ratelimit.ahit("poll", _address(request), protocol.limits().address_messages_per_minute)
    except ProtocolError as error:
        return _error(error, origin)
    await presence.polled(channel.pk, visitor)  # a visitor who polls is here (the email fallback waits)
    layer = get_channel_layer()
    assert layer is not None  # noqa: S101 - configured in settings
    inbox = await layer.new_channel("webchat.poll.")
    group = protocol.visitor_group(channel.pk, visitor)
    await layer.group_add(group, inbox)
    try:
        found = await database_sync_to_async(sessions.frames)(channel=channel, visitor=visitor, after=after, have=have)
        if not found:
            try:
                await asyncio.wait_for(layer.receive(inbox), timeout=POLL_SECONDS)
            except TimeoutError:
                pass
            else:
                found = await database_sync_to_async(sessions.frames)(
                    channel=channel, visitor=visitor, after=after, have=have
                )
    finally:
        await layer.group_discard(group, inbox)
    return _cors(JsonResponse({"type": "messages", "messages": found}), origin)


# -- uploads and attachments -------------------------------------------------------------------------

_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
}


@csrf_exempt
def upload(request: HttpRequest, key: str) -> HttpResponseBase:
    """A visitor's file (``multipart/form-data``: token, client_msg_id, file, text): stored as a message."""
    early = _preflight(request, key)
    if early is not None:
        return early
    origin = ""
    try:
        channel, origin = _channel_and_origin(request, key)
        limits = protocol.limits()
        if int(request.META.get("CONTENT_LENGTH") or 0) > limits.upload_bytes + 64 * 1024:
            raise ProtocolError(
                "too_large", f"Files may be at most {limits.upload_bytes // (1024 * 1024)} MB.", status=413
            )
        visitor = _visitor(channel, request.POST)
        file = request.FILES.get("file")
        if file is None:
            raise ProtocolError("no_file", "Attach a file.")
        if (file.size or 0) > limits.upload_bytes:
            raise ProtocolError(
                "too_large", f"Files may be at most {limits.upload_bytes // (1024 * 1024)} MB.", status=413
            )
        content = file.read()
        content_type = (file.content_type or "").split(";")[0].strip().lower()
        if content_type not in protocol.UPLOAD_TYPES:
            raise ProtocolError("file_type", "This kind of file cannot be sent here.", status=415)
        if content_type in _MAGIC and not content.startswith(_MAGIC[content_type]):
            raise ProtocolError("file_type", "The file is not what its type says.", status=415)
        ratelimit.hit("visitor", visitor, limits.messages_per_minute)
        ratelimit.hit("address", _address(request), limits.address_messages_per_minute)
        name = Path(str(file.name or "file")).name[:200] or "file"
        received = services.receive_visitor_message(
            channel=channel,
            visitor=visitor,
            client_msg_id=str(request.POST.get("client_msg_id", "")),
            text=str(request.POST.get("text", "")),
            page_url=str(request.POST.get("page", "")),
            attachments=(InboundAttachment(filename=name, content_type=content_type, content=content),),
        )
    except ProtocolError as error:
        return _error(error, origin)
    frame = protocol.message_frame(received.message, files_url=sessions.files_url(channel))
    if not received.duplicate:
        try:
            push.push(channel.pk, visitor, {"type": "webchat.message", "message": frame})
        except Exception:
            logger.warning("could not show upload %s in the visitor's other tabs", received.message.pk)
    ack = {"type": "ack", "client_msg_id": frame.get("client_msg_id", ""), "id": received.message.pk, "message": frame}
    return _cors(JsonResponse(ack), origin)


@require_GET
def attachment(request: HttpRequest, key: str, token: str) -> FileResponse:
    """An attachment of the visitor's conversation, named by a signed capability in the URL."""
    channel = selectors.channel_by_key(key)
    found = protocol.read_attachment_token(token)
    if channel is None or found is None:
        raise Http404("no such file")
    pk, visitor = found
    stored = (
        Attachment.objects.filter(pk=pk, message__channel=channel, message__address=visitor)
        .select_related("message")
        .first()
    )
    if stored is None:
        raise Http404("no such file")
    image = stored.content_type.startswith("image/") and stored.content_type != "image/svg+xml"
    response = FileResponse(
        stored.file.open("rb"),
        as_attachment=not image,
        filename=stored.filename,
        content_type=stored.content_type if image else "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    response["Cache-Control"] = "private, max-age=86400"
    return response
