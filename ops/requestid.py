"""One id per request, carried into the tasks it enqueues and into every log line on the way.

- An HTTP request takes its id from ``X-Request-ID`` (a proxy's or a provider's, when it is a
  sane token) or gets a new one, and answers with it in the same header. Webhooks skip Django's
  middleware (``inbox.views.webhooks.LeanWebhooks``), so the id is set one level up, around the whole
  ASGI application (:class:`RequestIdASGI`); :class:`RequestIdMiddleware` does the same under
  WSGI and the test client and keeps the ASGI one's id when there is one.
- A Celery task enqueued while an id is set carries it in a message header
  (``before_task_publish``); the worker restores it for the task's run (``task_prerun``). A task
  without one (the scheduler's sweepers) runs under its own task id.
- :class:`RequestIdFilter` puts the id on every log record (``request_id``), so the webhook's
  lines, the worker's and the broadcast's share it.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

HEADER = "X-Request-ID"
TASK_HEADER = "parley_request_id"
SCOPE_KEY = "parley.request_id"
VALID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

current: ContextVar[str] = ContextVar("parley_request_id", default="")


def accept(value: str | bytes | None) -> str:
    """The caller's id when it is a plain token of at most 128 characters, else a new one."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = (value or "").strip()
    return value if VALID.fullmatch(value) else uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` ("-" outside a request or task) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current.get() or "-"
        return True


class RequestIdASGI:
    """ASGI wrapper: sets the id for the whole HTTP request and adds it to the response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope.get("headers", ()) if name == b"x-request-id"), None)
        request_id = accept(given)
        scope = {**scope, SCOPE_KEY: request_id}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        token = current.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current.reset(token)


class RequestIdMiddleware:
    """Django middleware (first in the stack): the same for requests that come through Django.

    Sync and async: an async view (the website chat's long poll) must not be pushed into a thread.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.acall(request)
        request_id = request_id_of(request)
        token = current.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current.reset(token)
        response[HEADER] = request_id
        return response

    async def acall(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_of(request)
        token = current.set(request_id)
        try:
            response: HttpResponseBase = await self.get_response(request)
        finally:
            current.reset(token)
        response[HEADER] = request_id
        return response


def request_id_of(request: HttpRequest) -> str:
    """The ASGI wrapper's id for this request, else the caller's (or a new one)."""
    scope = getattr(request, "scope", None) or {}
    return str(scope.get(SCOPE_KEY) or accept(request.headers.get(HEADER)))


# -- Celery -----------------------------------------------------------------------------------------


def add_to_task(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``before_task_publish``: a task enqueued during a request or task carries its id."""
    request_id = current.get()
    if request_id and headers is not None:
        headers[TASK_HEADER] = request_id


_task_tokens: dict[str, Any] = {}


def restore_for_task(task_id: str = "", task: Any = None, **kwargs: Any) -> None:
    """``task_prerun``: run the task under the id it was enqueued with, or its own task id."""
    request = getattr(task, "request", None)
    given = getattr(request, TASK_HEADER, None) or (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    _task_tokens[task_id] = current.set(str(given) if given else f"task-{task_id}")


def clear_after_task(task_id: str = "", **kwargs: Any) -> None:
    """``task_postrun``: back to no id."""
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        try:
            current.reset(token)
        except ValueError:  # set in another context (a thread pool): just clear it
            current.set("")
