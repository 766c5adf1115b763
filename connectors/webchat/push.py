"""Frames to a visitor's open tabs through the channel layer, from sync code (the worker's send).

Sync code sends through the core's publishing loop (:func:`inbox.realtime.publish.send_now`): one
long-lived event loop, layer and set of Redis connections per process, shared with the operators'
broadcasts, instead of a second loop (a thread, a layer and its connections) of the widget's own,
or a new one per call.
"""

from __future__ import annotations

from typing import Any

from channels.layers import get_channel_layer

from connectors.webchat.protocol import visitor_group
from inbox.realtime import publish


async def apush(channel_id: int, visitor: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(visitor_group(channel_id, visitor), event)


def push(channel_id: int, visitor: str, event: dict[str, Any]) -> None:
    """Send ``event`` (its ``type`` prefixed ``webchat.``) to every open tab of the visitor.

    Raises when the channel layer cannot take it: the caller (a delivery) is then retried.
    """
    publish.send_now(visitor_group(channel_id, visitor), event)
