"""Per-token rate limits: ``API_RATE_LIMIT`` requests (``COUNT/SECONDS``, default ``600/60``) per token.

A fixed window counted in Redis: ``INCR`` and ``EXPIRE`` in one pipelined round trip per request
(atomic across web processes; the key expires with its window). Django's cache API would take
three round trips (``add``, then ``incr``'s ``EXISTS`` and ``INCRBY``). django-ninja's own ``SimpleRateThrottle`` keeps a list of request
times under a get-then-set, which loses counts when requests of one token race across processes
and grows with the limit; this plugs into the same hook (``BaseThrottle``), so ninja still answers
429 with ``Retry-After``. Like the webhook counters (common/throttle.py) it fails open: with Redis
down the API still answers, and the log says why.
"""

from __future__ import annotations

import logging
import time
from functools import cache

import redis
from django.conf import settings
from django.http import HttpRequest
from ninja.throttling import BaseThrottle

from api.models import ApiToken

logger = logging.getLogger(__name__)


def rate() -> tuple[int, int]:
    """(requests allowed, per how many seconds) from ``API_RATE_LIMIT``; ``0/60`` turns limits off."""
    count, _, seconds = str(getattr(settings, "API_RATE_LIMIT", "600/60")).partition("/")
    return int(count), int(seconds or 60)


@cache
def _client(url: str) -> redis.Redis:
    """One connection pool per process (and Redis URL)."""
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def client() -> redis.Redis:
    """This process's Redis client (the URL's pool) for the API's counters and flags."""
    return _client(settings.REDIS_URL)


def count(key: str, period: int) -> int:
    """Add one to ``key`` (expiring after ``period`` seconds and a little) and return the count."""
    pipeline = client().pipeline(transaction=False)
    pipeline.incr(key)
    pipeline.expire(key, period + 5)
    total, _ = pipeline.execute()
    return int(total)


class TokenRateThrottle(BaseThrottle):
    """Counts requests per token; refuses past the limit until the window turns."""

    def allow_request(self, request: HttpRequest) -> bool:
        limit, period = rate()
        token = getattr(request, "auth", None)
        if limit <= 0 or not isinstance(token, ApiToken):
            return True
        now = time.time()
        window = int(now // period)
        key = f"parley:throttle:api:{token.prefix}:{window}"  # the prefix: unique, never reused like an id
        try:
            used = count(key, period)
        except redis.RedisError:  # Redis down: let the request through, and say so in the log
            logger.warning("API rate counters unavailable", exc_info=True)
            return True
        return used <= limit

    def wait(self) -> float | None:
        # One instance serves every request (and thread): the wait is computed, not kept.
        _, period = rate()
        return max(period - (time.time() % period), 1.0)
