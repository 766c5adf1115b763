"""What the providers' stand-ins share: a real HTTP server on 127.0.0.1 and JSON answers.

A stand-in subclasses :class:`LocalServer` and answers every request in :meth:`LocalServer.handle`;
``start()`` serves it on a free port in a thread (``base_url`` then names it), ``stop()`` ends it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LocalServer:
    # Appended to ``http://127.0.0.1:<port>`` in ``base_url`` (an API's version prefix, such as /v1).
    base_path = ""
    base_url: str = ""
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Self:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                stand_in.handle(self, "GET")

            def do_POST(self) -> None:
                stand_in.handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}{self.base_path}"
        # serve_forever looks for shutdown() every poll_interval (0.5 s by default): every test that
        # stops a stand-in waited up to that long.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        raise NotImplementedError


def send_json(
    handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    """Answer ``payload`` as JSON; a client that gave up meanwhile (a slow answer) is no error."""
    data = json.dumps(payload).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
