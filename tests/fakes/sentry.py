"""A stand-in for Sentry's ingest endpoint: ``POST /api/<project>/envelope/``, envelopes kept in order.

The SDK compresses envelopes (gzip, or brotli when installed); the stand-in undoes either and keeps
each envelope's items as parsed JSON (the header line, then one item header and payload per item).
"""

from __future__ import annotations

import gzip
import json
import zlib
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.http import LocalServer, send_json


class SentryStandIn(LocalServer):
    def __init__(self) -> None:
        self.envelopes: list[list[dict[str, Any]]] = []
        self.raw: list[bytes] = []

    def dsn(self, project: int = 1) -> str:
        return self.base_url.replace("http://", "http://publickey@", 1) + f"/{project}"

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        encoding = handler.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # only when the SDK found it installed

            body = brotli.decompress(body)
        self.raw.append(body)
        self.envelopes.append([json.loads(line) for line in body.splitlines() if line.strip().startswith(b"{")])
        send_json(handler, 200, {"id": "0" * 32})

    def events(self) -> list[dict[str, Any]]:
        """Every error event received (items of type "event")."""
        found = []
        for items in self.envelopes:
            for header, payload in zip(items[1::2], items[2::2], strict=False):
                if header.get("type") == "event":
                    found.append(payload)
        return found
