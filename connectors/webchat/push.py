"""Frames to a visitor's open tabs through the channel layer, from sync code (the worker's send).

Like :mod:`inbox.realtime`, events go out from one long-lived event loop per process, so the
layer's Redis connection is reused instead of made anew by ``async_to_sync`` on every call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from channels.layers import get_channel_layer

from connectors.webchat.protocol import visitor_group

logger = logging.getLogger(__name__)

PUSH_TIMEOUT = 5.0

_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None


def _running_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="parley-webchat-push", daemon=True).start()
            _loop = (os.getpid(), loop)
        return _loop[1]


async def apush(channel_id: int, visitor: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(visitor_group(channel_id, visitor), event)


def push(channel_id: int, visitor: str, event: dict[str, Any]) -> None:
    """Send ``event`` (its ``type`` prefixed ``webchat.``) to every open tab of the visitor.

    Raises when the channel layer cannot take it: the caller (a delivery) is then retried.
    """
    asyncio.run_coroutine_threadsafe(apush(channel_id, visitor, event), _running_loop()).result(PUSH_TIMEOUT)
