"""Who may read the operations endpoints (/metrics, /healthz/deep): a bearer token or an address.

Nothing is served until an operator configures access: with no token and no allowed network the
endpoints answer 404, as if they did not exist. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from common.throttle import client_ip


def networks(values: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Parse ``METRICS_ALLOW_FROM`` (addresses or networks); raises ValueError on a bad one."""
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()]


def bearer(request: HttpRequest) -> str:
    scheme, _, token = str(request.headers.get("Authorization", "")).partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def from_allowed_network(request: HttpRequest) -> bool:
    allowed = networks(settings.METRICS_ALLOW_FROM)
    if not allowed:
        return False
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    return any(address in network for network in allowed)


def refusal(request: HttpRequest, *, tokens: Iterable[str]) -> HttpResponse | None:
    """None when the request may read; else the answer to give (404 unconfigured, 401 refused)."""
    configured = [token for token in tokens if token]
    if not configured and not settings.METRICS_ALLOW_FROM:
        return HttpResponse("not found\n", status=404, content_type="text/plain")
    given = bearer(request)
    if given and any(hmac.compare_digest(given.encode(), token.encode()) for token in configured):
        return None
    if from_allowed_network(request):
        return None
    response = HttpResponse("a bearer token is required\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="parley"'
    return response
