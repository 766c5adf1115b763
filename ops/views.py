"""The operations endpoints: /metrics and /healthz/deep, behind a token or an allowed address."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from ops import access, health, metrics


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus' text format; ``METRICS_TOKEN`` as a bearer token or ``METRICS_ALLOW_FROM``."""
    refusal = access.refusal(request, tokens=[settings.METRICS_TOKEN])
    if refusal is not None:
        return refusal
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)


@never_cache
@require_GET
def deep_health(request: HttpRequest) -> HttpResponse:
    """Parts, queue ages and the sweepers' last runs: 200 when all is well, 503 when anything is
    down or stale. ``HEALTH_TOKEN`` or ``METRICS_TOKEN``, or an allowed address."""
    refusal = access.refusal(request, tokens=[settings.HEALTH_TOKEN, settings.METRICS_TOKEN])
    if refusal is not None:
        return refusal
    ok, checks = health.report()
    return JsonResponse({"status": "ok" if ok else "degraded", **checks}, status=200 if ok else 503)
