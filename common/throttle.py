"""Who is asking (the client's address, proxies considered) and the webhook failure counters.

:func:`client_ip` is the one answer to "which address is this request from", for sign-in
throttling (django-axes calls it), webhook limits and the audit log. ``X-Forwarded-For`` is believed
only as far as ``TRUSTED_PROXY_COUNT`` says: with N proxies in front, each appending the address
it was reached from, the client is the N-th entry from the right; whatever the client wrote itself
stands further left and is ignored. With no proxy configured the header is never read.

Webhook limits count *failures* only (an unknown channel key, a bad signature, a refused request),
per address and per channel key, in Redis through Django's cache. A provider's correctly signed
delivery is never counted and never refused by the per-key limit; an address that keeps failing is
refused before the channel is even looked up. Why not django-ratelimit here: its decorator counts
every request (we count failures, and decide before the view's database lookup), and its
``get_usage`` writes on every check and lets a Redis outage escape as an exception, while a webhook
must still be stored when Redis is down (these counters fail open). Two small fixed-window counters
read in one round trip are all this needs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """The address of the client that sent ``request`` (see the module's docstring)."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    proxies = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < proxies:
        # Fewer hops than configured proxies: the request did not come through them all; the
        # header cannot be trusted, the connection's own address can.
        return remote
    return forwarded[-proxies]


# -- webhook failures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Too many failures: answer 429 with ``Retry-After: retry_after`` (seconds)."""

    retry_after: int


def _limit() -> tuple[int, int]:
    """(failures allowed, per how many seconds) from ``WEBHOOK_FAILURE_LIMIT`` ("30/60")."""
    value = str(getattr(settings, "WEBHOOK_FAILURE_LIMIT", "30/60"))
    count, _, seconds = value.partition("/")
    return int(count), int(seconds or 60)


def _keys(*, address: str, key: str | None, now: float) -> tuple[str, str | None, int]:
    _, period = _limit()
    window = int(now // period)
    retry_after = period - int(now % period)
    by_address = f"throttle:webhook:address:{address}:{window}"
    by_key = f"throttle:webhook:key:{key}:{window}" if key else None
    return by_address, by_key, max(retry_after, 1)


def webhook_refusal(request: HttpRequest, *, key: str | None = None) -> Refusal | None:
    """A :class:`Refusal` when this request's address (or, given ``key``, that channel key) has failed
    too often in the current window; None otherwise, or when the counters cannot be read."""
    limit, _ = _limit()
    if limit <= 0:
        return None
    by_address, by_key, retry_after = _keys(address=client_ip(request), key=key, now=time.time())
    names = [by_address] + ([by_key] if by_key else [])
    try:
        counts = cache.get_many(names)
    except Exception:  # Redis down: the webhook still goes through (fail open), the log says why
        logger.warning("webhook failure counters unavailable", exc_info=True)
        return None
    if any(int(counts.get(name) or 0) >= limit for name in names):
        return Refusal(retry_after=retry_after)
    return None


def count_webhook_failure(request: HttpRequest, *, key: str | None = None) -> None:
    """Count one refused webhook request against its address and, given ``key``, that channel key."""
    limit, period = _limit()
    if limit <= 0:
        return
    by_address, by_key, _ = _keys(address=client_ip(request), key=key, now=time.time())
    try:
        for name in (by_address, by_key):
            if name is not None:
                cache.add(name, 0, timeout=period + 5)
                cache.incr(name)
    except Exception:
        logger.warning("webhook failure counters unavailable", exc_info=True)


def forget_webhook_failures(*, address: str) -> None:
    """Forget the refused webhook requests counted against ``address`` (to let it in again at once)."""
    _, period = _limit()
    now = time.time()
    names = [_keys(address=address, key=None, now=moment)[0] for moment in (now, now - period)]
    try:
        cache.delete_many(names)
    except Exception:
        logger.warning("webhook failure counters unavailable", exc_info=True)
