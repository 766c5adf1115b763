"""Connections to Redis, from ``REDIS_URL`` or through Redis Sentinel (``REDIS_SENTINELS``).

Every client of ours (not Celery's nor the channel layer's, which the settings configure) is made
here, so that a Sentinel deployment reaches the current master everywhere: after a failover the
Sentinel clients ask the sentinels again and follow the new master.
"""

from __future__ import annotations

from typing import Any, cast

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel, SentinelConnectionPool


def sentinels() -> list[tuple[str, int]]:
    """``REDIS_SENTINELS`` ("host:port,host:port") as pairs; empty without Sentinel."""
    found = []
    for entry in settings.REDIS_SENTINELS:
        host, _sep, port = entry.rpartition(":")
        found.append((host or entry, int(port) if port.isdigit() else 26379))
    return found


def master_options() -> dict[str, Any]:
    options: dict[str, Any] = {"db": settings.REDIS_SENTINEL_DB}
    if settings.REDIS_PASSWORD:
        options["password"] = settings.REDIS_PASSWORD
    return options


def client(**options: Any) -> redis.Redis:
    """A client of the master: ``REDIS_URL``'s server, or the one the sentinels name."""
    if settings.REDIS_SENTINELS:
        sentinel = Sentinel(sentinels(), socket_timeout=options.get("socket_timeout", 0.5))  # type: ignore[no-untyped-call]
        master = sentinel.master_for(settings.REDIS_SENTINEL_MASTER, **master_options(), **options)  # type: ignore[no-untyped-call]
        return cast(redis.Redis, master)
    return redis.Redis.from_url(settings.REDIS_URL, **options)


def async_client(**options: Any) -> aioredis.Redis:
    """:func:`client` for the event loop."""
    if settings.REDIS_SENTINELS:
        sentinel = AsyncSentinel(sentinels(), socket_timeout=options.get("socket_timeout", 0.5))  # type: ignore[no-untyped-call]
        return cast(aioredis.Redis, sentinel.master_for(settings.REDIS_SENTINEL_MASTER, **master_options(), **options))
    return aioredis.Redis.from_url(settings.REDIS_URL, **options)


class SentinelPool(SentinelConnectionPool):
    """A pool class for Django's Redis cache (``OPTIONS["pool_class"]``): the cache calls
    ``from_url(LOCATION)``; with Sentinel the location is ignored and the sentinels are asked."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SentinelPool:
        sentinel = Sentinel(sentinels(), socket_timeout=0.5)  # type: ignore[no-untyped-call]
        return cls(settings.REDIS_SENTINEL_MASTER, sentinel, **master_options(), **options)
