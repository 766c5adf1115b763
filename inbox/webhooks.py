"""The one way in for providers (webhooks), and the health check."""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from inbox.models import Channel
from inbox.transport import ConfigurationError, InvalidRequest, connector_for

logger = logging.getLogger(__name__)


@csrf_exempt
def webhook(request: HttpRequest, key: str, endpoint: str) -> HttpResponse:
    """Look up the channel by its key, let its connector verify, store and acknowledge."""
    channel = Channel.objects.filter(key=key, is_active=True).first()
    if channel is None:
        return HttpResponse("unknown channel\n", status=404, content_type="text/plain")
    try:
        return connector_for(channel).handle_webhook(request, endpoint)
    except InvalidRequest as exc:
        logger.warning("webhook refused on channel %s/%s: %s", channel.pk, endpoint, exc.reason)
        return HttpResponse(exc.reason + "\n", status=exc.status, content_type="text/plain")
    except RequestDataTooBig:
        logger.warning("webhook payload too large on channel %s/%s", channel.pk, endpoint)
        return HttpResponse("payload too large\n", status=413, content_type="text/plain")
    except ConfigurationError as exc:
        logger.error("channel %s is misconfigured: %s", channel.pk, exc)
        return HttpResponse("channel misconfigured\n", status=503, content_type="text/plain")


def healthz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and worker state: 200 when all are fine, 503 otherwise."""
    checks: dict[str, dict[str, object]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True, "vendor": connection.vendor}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": str(exc)}
    try:
        from django.core.cache import cache

        cache.set("parley:healthz", "1", 5)
        checks["redis"] = {"ok": cache.get("parley:healthz") == "1"}
    except Exception as exc:
        checks["redis"] = {"ok": False, "error": str(exc)}
    try:
        from config.celery import app

        replies = app.control.ping(timeout=1.0)
        checks["worker"] = {"ok": bool(replies), "workers": len(replies)}
    except Exception as exc:
        checks["worker"] = {"ok": False, "error": str(exc)}
    ok = all(bool(check["ok"]) for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "degraded", **checks}, status=200 if ok else 503)
