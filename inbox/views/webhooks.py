"""The one way in for providers (webhooks), and the health check.

Under ASGI, ``config.asgi`` routes ``/hooks/…`` to :class:`LeanWebhooks` instead of Django's
handler: the same view, without the middleware stack (none of it serves a provider: no session, no
user, no CSRF, no locale) and in one worker thread instead of a thread hop per sync middleware
(docs/performance.md: ~24 hops, 3 to 4.5 ms of CPU per request). WSGI and the test client reach the same view
through ``config.urls``.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.handlers.exception import convert_exception_to_response
from django.db import DatabaseError, connection
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from common import throttle
from inbox import spool
from inbox.models import Channel
from inbox.signals import announce_webhook
from inbox.transport import ConfigurationError, InvalidRequest, connector_for

logger = logging.getLogger(__name__)


# Active channels by webhook key, kept briefly in this process: a webhook then costs one statement
# (the event's INSERT). Saving or deleting a channel empties it here at once; other processes see
# the change within CHANNEL_CACHE_SECONDS (switching a channel off, a new auth token).
CHANNEL_CACHE_SECONDS = 5.0
_channels: dict[str, tuple[float, Channel | None]] = {}


def _channel_by_key(key: str) -> Channel | None:
    """The active channel of ``key``; while the database is down, the one this process last saw.

    A stale answer only while the database cannot give a fresh one: the webhook is then verified
    with the channel's last known credentials and spooled (:mod:`inbox.spool`).
    """
    now = time.monotonic()
    cached = _channels.get(key)
    if cached is not None and (cached[0] > now or spool.database_down()):
        return cached[1]
    try:
        channel = Channel.objects.filter(key=key, is_active=True).first()
    except DatabaseError:
        if cached is None:
            raise
        spool.note_database_down()
        return cached[1]
    if len(_channels) > 1000:
        _channels.clear()  # keys are random: a scan of made-up keys must not grow this without bound
    _channels[key] = (now + CHANNEL_CACHE_SECONDS, channel)
    return channel


@receiver(post_save, sender=Channel, dispatch_uid="webhooks-channel-saved")
@receiver(post_delete, sender=Channel, dispatch_uid="webhooks-channel-deleted")
def _forget_channels(**kwargs: Any) -> None:
    _channels.clear()


@csrf_exempt
@announce_webhook  # counted by ops (/metrics)
def webhook(request: HttpRequest, key: str, endpoint: str) -> HttpResponse:
    """Look up the channel by its key, let its connector verify, store and acknowledge.

    Refused requests are counted per address and per key (common.throttle); an address past the
    limit is refused before the channel is looked up, a key past it only once its request failed too.
    """
    refusal = throttle.webhook_refusal(request)
    if refusal is not None:
        return _too_many(refusal)
    try:
        channel = _channel_by_key(key)
    except DatabaseError:
        logger.exception("webhook for an unknown key while the database is down: asking to retry")
        return _unavailable()
    if channel is None:
        throttle.count_webhook_failure(request)
        return HttpResponse("unknown channel\n", status=404, content_type="text/plain")
    try:
        return connector_for(channel).handle_webhook(request, endpoint)
    except InvalidRequest as exc:
        refusal = throttle.webhook_refusal(request, key=key)
        throttle.count_webhook_failure(request, key=key)
        if refusal is not None:
            return _too_many(refusal)
        logger.warning("webhook refused on channel %s/%s: %s", channel.pk, endpoint, exc.reason)
        return HttpResponse(exc.reason + "\n", status=exc.status, content_type="text/plain")
    except RequestDataTooBig:
        logger.warning("webhook payload too large on channel %s/%s", channel.pk, endpoint)
        return HttpResponse("payload too large\n", status=413, content_type="text/plain")
    except ConfigurationError as exc:
        logger.error("channel %s is misconfigured: %s", channel.pk, exc)
        return HttpResponse("channel misconfigured\n", status=503, content_type="text/plain")
    except (spool.NotDurable, DatabaseError):
        logger.exception("webhook on channel %s/%s not stored: asking the provider to retry", channel.pk, endpoint)
        return _unavailable()


def _unavailable() -> HttpResponse:
    """Not stored anywhere durable: a 503 the provider retries, never a 200."""
    response = HttpResponse("temporarily unavailable; try again\n", status=503, content_type="text/plain")
    response["Retry-After"] = "5"
    return response


def _too_many(refusal: throttle.Refusal) -> HttpResponse:
    response = HttpResponse("too many refused requests; try again later\n", status=429, content_type="text/plain")
    response["Retry-After"] = str(refusal.retry_after)
    return response


HOOK_PATH = re.compile(r"^/hooks/(?P<key>[^/]+)/(?P<endpoint>[^/]+)/$")

# What SecurityMiddleware and XFrameOptionsMiddleware would add: a webhook's answer (plain text,
# JSON, TwiML) is never a page to sniff, frame or leak a referrer from.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class LeanWebhooks(ASGIHandler):
    """An ASGI app for ``/hooks/<key>/<endpoint>/``: read the body, run :func:`webhook` in one thread.

    Keeps what Django's handler does for such a request (size limits and their 413, the request
    signals that close database connections, exceptions turned into responses and logged) and
    skips the middleware, adding its security headers itself. Paths it does not serve go to ``fallback``.
    """

    def __init__(self, fallback: Any) -> None:
        super().__init__()
        self.fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = None
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            path = scope["path"]
            match = HOOK_PATH.match(path[len(root) :] if root and path.startswith(root) else path)
        if match is None:
            await self.fallback(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except Exception:  # the provider went away before sending it all
            return
        try:
            request, error = self.create_request(scope, body_file)
            response: HttpResponseBase
            if request is None:  # too large (413) or unreadable (400)
                assert error is not None  # noqa: S101 - Django returns one or the other
                response = error
            else:
                response = await sync_to_async(self._respond, thread_sensitive=False)(
                    request, match["key"], match["endpoint"]
                )
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            await self.send_response(response, send)
        finally:
            body_file.close()

    def _respond(self, request: ASGIRequest, key: str, endpoint: str) -> HttpResponseBase:
        signals.request_started.send(sender=self.__class__)
        try:
            view = convert_exception_to_response(lambda request: webhook(request, key, endpoint))
            response = view(request)
            assert isinstance(response, HttpResponseBase)  # noqa: S101 - a sync view
        finally:
            # request_finished closes this thread's database connection (back to the pool).
            signals.request_finished.send(sender=self.__class__)
        return response


def healthz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and worker state: 200 when all are fine, 503 otherwise.

    Anyone gets the states (``ok`` per component); what went wrong goes to the log, and only staff
    see the details in the answer (an exception's text can name hosts, users and paths).
    """
    checks: dict[str, dict[str, object]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True, "vendor": connection.vendor}
    except Exception as exc:
        logger.warning("health check: the database does not answer", exc_info=True)
        checks["database"] = {"ok": False, "error": str(exc)}
    try:
        from django.core.cache import cache

        cache.set("parley:healthz", "1", 5)
        checks["redis"] = {"ok": cache.get("parley:healthz") == "1"}
    except Exception as exc:
        logger.warning("health check: Redis does not answer", exc_info=True)
        checks["redis"] = {"ok": False, "error": str(exc)}
    try:
        from celery import current_app as app

        replies = app.control.ping(timeout=1.0)
        checks["worker"] = {"ok": bool(replies), "workers": len(replies)}
    except Exception as exc:
        logger.warning("health check: the workers cannot be asked", exc_info=True)
        checks["worker"] = {"ok": False, "error": str(exc)}
    ok = all(bool(check["ok"]) for check in checks.values())
    if not _is_staff(request):
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return JsonResponse({"status": "ok" if ok else "degraded", **checks}, status=200 if ok else 503)


def _is_staff(request: HttpRequest) -> bool:
    try:  # reading the signed-in user needs the database, which may be what is down
        user = getattr(request, "user", None)
        return bool(user is not None and user.is_active and user.is_staff)
    except Exception:
        return False
