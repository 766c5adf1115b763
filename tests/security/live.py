"""Websocket helpers for the security tests: an operator's real consumer on the real channel layer."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from inbox.realtime.consumers import OperatorConsumer


@asynccontextmanager
async def socket_for(operator: Any):
    communicator = WebsocketCommunicator(OperatorConsumer.as_asgi(), "/ws/inbox/")
    communicator.scope["user"] = operator
    connected, _ = await communicator.connect()
    assert connected
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def _output(communicator: WebsocketCommunicator) -> dict[str, Any]:
    """The next message the consumer sent. Unlike ``receive_output``, a timeout around this does not
    cancel the consumer, so a test can wait for "nothing" and go on using the socket."""
    if communicator.future.done():
        communicator.future.result()  # raise the consumer's exception, if any
    return await communicator.output_queue.get()


async def frames_until(communicator: WebsocketCommunicator, wanted: Any, wait: float = 3.0) -> Any:
    """Read frames until one satisfies ``wanted`` (HTML frames as text, JSON frames as dicts)."""
    async with asyncio.timeout(wait):
        while True:
            output = await _output(communicator)
            if output["type"] != "websocket.send":
                raise AssertionError(f"the socket closed: {output}")
            raw = output.get("text") or ""
            frame = json.loads(raw) if raw.startswith("{") else raw
            if wanted(frame):
                return frame


async def nothing_matching(communicator: WebsocketCommunicator, wanted: Any, wait: float = 0.8) -> bool:
    try:
        await frames_until(communicator, wanted, wait=wait)
    except TimeoutError:
        return True
    return False


async def closed_with(communicator: WebsocketCommunicator, wait: float = 3.0) -> int | None:
    """Read until the server closes the socket; its close code (None if it did not close)."""
    try:
        async with asyncio.timeout(wait):
            while True:
                output = await _output(communicator)
                if output["type"] == "websocket.close":
                    return int(output.get("code", 1000))
    except TimeoutError:
        return None


def is_json(kind: str, **fields: Any):
    return lambda frame: (
        isinstance(frame, dict) and frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items())
    )


def is_changed(conversation_id: int):
    return lambda frame: (
        isinstance(frame, dict) and frame.get("type") == "changed" and conversation_id in frame["conversations"]
    )


def html_with(text: str):
    return lambda frame: isinstance(frame, str) and text in frame


async def run(func, *args, **kwargs):
    return await database_sync_to_async(func)(*args, **kwargs)


async def view(communicator: WebsocketCommunicator, conversation_id: int) -> None:
    await communicator.send_json_to({"type": "view", "conversation": conversation_id})
    await frames_until(communicator, is_json("viewing", conversation=conversation_id))
