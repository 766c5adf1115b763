"""Per-visitor and per-address limits: fixed one-minute windows counted in Redis (shared by processes).

A refused message is not lost: the widget keeps it and sends it again after ``retry_after`` seconds.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

from common import redisconn
from connectors.webchat.protocol import ProtocolError

WINDOW = 60

_sync_client: redis.Redis | None = None
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def key_prefix() -> str:
    """The widget's Redis keys share the channel layer's prefix (one Redis, several installs)."""
    layer: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    return f"{layer.get('CONFIG', {}).get('prefix', 'parley')}:webchat"


def client() -> redis.Redis:
    """This process's Redis client for sync code (made on first use)."""
    global _sync_client
    if _sync_client is None:
        _sync_client = redisconn.client()  # Sentinel-aware
    return _sync_client


def aclient() -> aioredis.Redis:
    """The running event loop's Redis client (one per loop: a client is bound to its loop)."""
    loop = asyncio.get_running_loop()
    found = _async_clients.get(loop)
    if found is None:
        found = redisconn.async_client()
        _async_clients[loop] = found
    return found


def _key(scope: str, who: str) -> tuple[str, int]:
    now = int(time.time())
    window = now // WINDOW
    return f"{key_prefix()}:rl:{scope}:{who}:{window}", WINDOW - now % WINDOW


def _refusal(scope: str, retry_after: int) -> ProtocolError:
    detail = {
        "visitor": "Too many messages: wait a moment.",
        "address": "Too many messages from this network: wait a moment.",
        "new_visitor": "Too many new chats from this network: wait a moment.",
        "typing": "Too many typing notices.",
        "seen": "Too many receipts.",
        "poll": "Too many requests from this network: wait a moment.",
    }[scope]
    return ProtocolError("rate_limited", detail, status=429, retry_after=max(1, retry_after))


def hit(scope: str, who: str, limit: int) -> None:
    """Count one event; raise a 429 :class:`ProtocolError` past ``limit`` a minute."""
    key, retry_after = _key(scope, who)
    pipe = client().pipeline()
    pipe.incr(key)
    pipe.expire(key, WINDOW + 5)
    count = int(pipe.execute()[0])
    if count > limit:
        raise _refusal(scope, retry_after)


async def ahit(scope: str, who: str, limit: int) -> None:
    """:func:`hit` for the event loop (one Redis client per loop)."""
    key, retry_after = _key(scope, who)
    async with aclient().pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, WINDOW + 5)
        count = int((await pipe.execute())[0])
    if count > limit:
        raise _refusal(scope, retry_after)
