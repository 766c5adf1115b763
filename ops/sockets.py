"""Open websockets, counted around the ASGI application so that no consumer needs to know.

Each web process keeps its own count (an accepted socket adds one, its end takes it away) and
``ops.counters`` shares it through Redis with a timestamp, so /metrics adds up every web process
and forgets one that stopped (``GAUGE_STALE_SECONDS``).
"""

from __future__ import annotations

from typing import Any

from ops import counters
from ops.metrics import WEBSOCKETS


def kind_of(path: str) -> str:
    return "webchat" if path.startswith("/ws/webchat/") else "operator"


class CountedSockets:
    """ASGI wrapper for the websocket application."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        labels = {"kind": kind_of(str(scope.get("path", "")))}
        accepted = False

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal accepted
            await send(message)
            if message.get("type") == "websocket.accept" and not accepted:
                accepted = True
                counters.change_gauge(WEBSOCKETS, labels, 1)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if accepted:
                counters.change_gauge(WEBSOCKETS, labels, -1)
