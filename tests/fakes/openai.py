"""A local stand-in for an OpenAI-compatible chat-completions server: a real HTTP server on 127.0.0.1.

It speaks what the LLM backend calls: ``POST /v1/chat/completions`` with ``Authorization: Bearer
<key>`` (401 otherwise, in OpenAI's error shape) and a JSON body with ``model`` and ``messages``
(400 otherwise). Every request is recorded (:attr:`FakeOpenAI.requests`), authorised or not.

Replies are scripted, one per request, in order (:meth:`FakeOpenAI.script`):

- :func:`answer` / :func:`handoff` / :func:`content`: a chat completion whose message content is
  the model's JSON reply (or any text, to play a model that breaks the format);
- :func:`slow`: any of those, held back for some seconds (past the client's timeout);
- :func:`status`: an error status, ``429`` with ``Retry-After``, ``500``, ``503``...

With nothing scripted the server answers 500 "no scripted reply", so a test that did not expect
the model to be called fails loudly instead of passing by luck.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.http import LocalServer, send_json


@dataclass(frozen=True)
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message's content (200 only)
    delay: float = 0.0
    finish_reason: str = "stop"


def content(text: str, *, finish_reason: str = "stop") -> Reply:
    """A completion whose assistant message says ``text``, whatever it is."""
    return Reply(content=text, finish_reason=finish_reason)


def answer(text: str, article_ids: list[Any], reason: str = "the article answers it") -> Reply:
    return content(json.dumps({"action": "answer", "answer": text, "article_ids": article_ids, "reason": reason}))


def handoff(reason: str = "the articles do not cover this") -> Reply:
    return content(json.dumps({"action": "handoff", "answer": "", "article_ids": [], "reason": reason}))


def slow(seconds: float, reply: Reply | None = None) -> Reply:
    base = reply or handoff("slow")
    return Reply(status=base.status, content=base.content, delay=seconds, finish_reason=base.finish_reason)


def status(code: int) -> Reply:
    return Reply(status=code)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.raw)
        return decoded

    @property
    def context(self) -> dict[str, Any]:
        """The JSON document the backend puts in the user message (articles and conversation)."""
        [user] = [m for m in self.body["messages"] if m["role"] == "user"]
        decoded: dict[str, Any] = json.loads(user["content"])
        return decoded


@dataclass
class FakeOpenAI(LocalServer):
    api_key: str = "sk-test-0123456789abcdef"
    model: str = "parley-test-model"
    requests: list[Request] = field(default_factory=list)
    _replies: list[Reply] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    base_path = "/v1"  # base_url is what LLM_BASE_URL is set to: http://127.0.0.1:<port>/v1

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    # -- the API ------------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        if method != "POST":
            return self._error(handler, 404, "Not found", "invalid_request_error")
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append(Request(handler.path, dict(handler.headers.items()), raw))
        if handler.path != "/v1/chat/completions":
            return self._error(handler, 404, f"Unknown path {handler.path}", "invalid_request_error")
        if handler.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return self._error(handler, 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error(
                handler, 400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("messages"), list):
            return self._error(handler, 400, "'model' and 'messages' are required.", "invalid_request_error")
        with self._lock:
            reply = self._replies.pop(0) if self._replies else Reply(status=500, content="no scripted reply")
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status == 429:
            return self._error(
                handler, 429, "Rate limit reached.", "requests", "rate_limit_exceeded", headers={"Retry-After": "20"}
            )
        if reply.status != 200:
            return self._error(handler, reply.status, reply.content or "The server had an error.", "server_error")
        completion = {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {"prompt_tokens": len(raw) // 4, "completion_tokens": len(reply.content or "") // 4},
        }
        completion["usage"]["total_tokens"] = sum(completion["usage"].values())
        return send_json(handler, 200, completion)

    def _error(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        message: str,
        kind: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        send_json(handler, status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(**kwargs).start()
    try:
        yield fake
    finally:
        fake.stop()
