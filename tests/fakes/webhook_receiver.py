"""An integrator's webhook receiver on 127.0.0.1: records every request, answers as told.

``answers`` is a queue of status codes (or ``"slow"`` to wait past the client's timeout) used one per
request; when it is empty the receiver answers 200. ``received`` holds (headers, body, arrived_at).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.http import LocalServer


class WebhookReceiver(LocalServer):
    def __init__(self, slow_seconds: float = 2.0) -> None:
        self.answers: list[int | str] = []
        self.received: list[tuple[dict[str, str], bytes, float]] = []
        self.slow_seconds = slow_seconds
        self._lock = threading.Lock()

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        with self._lock:
            answer = self.answers.pop(0) if self.answers else 200
            self.received.append(({k.lower(): v for k, v in handler.headers.items()}, body, time.time()))
        if answer == "slow":
            time.sleep(self.slow_seconds)
            answer = 200
        try:
            handler.send_response(int(answer))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        except OSError:
            pass  # the client gave up (a timeout)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _h, body, _t in self.received]
