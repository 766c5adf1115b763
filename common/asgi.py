"""A request for a sync view runs in one thread, from start to end, instead of hopping in and out.

Under ASGI, Django runs its middleware in async mode. Each hook of a ``MiddlewareMixin``
middleware (``process_request``, ``process_view``, ``process_response``) and the sync view are
then called through ``sync_to_async``, each a trip to a thread and back: 22 for one request here,
about 3 ms of CPU, more than most views cost (docs/performance.md, "Every HTTP request: one trip
to a thread"). Every view
of Parley's but the website chat's long poll is sync, so :class:`SyncViews` loads the middleware
in sync mode, as WSGI would, and runs the request's signals, middleware and view in one call to a
thread. A path whose view is a coroutine (the long poll, which must not hold a thread while it
waits) goes to ``fallback``, Django's own ASGI handler. What Django's handler does around a request
is kept: the body read off the event loop, size limits and their 413, the script prefix,
``request_started`` and ``request_finished`` (which return database connections to the pool),
streaming responses, a thread of the request's own (``ThreadSensitiveContext``).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix
from django.http import FileResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import Resolver404, get_resolver, set_script_prefix


class SyncViews(ASGIHandler):
    """Django's ASGI handler with the middleware in sync mode, for paths whose view is sync."""

    def __init__(self, fallback: Any) -> None:
        super().__init__()
        self.fallback = fallback

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    @staticmethod
    def view_is_async(path_info: str) -> bool:
        """Whether the view of ``path_info`` is a coroutine function (a path with no view: no)."""
        try:
            return iscoroutinefunction(get_resolver().resolve(path_info).func)
        except Resolver404:
            return False  # the 404 page is a sync view

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        prefix = get_script_prefix(scope)  # what ASGIRequest does to find the path's view
        if self.view_is_async(scope["path"].removeprefix(prefix) if prefix else scope["path"]):
            await self.fallback(scope, receive, send)
            return
        async with ThreadSensitiveContext():
            await self.handle_sync(scope, receive, send, prefix)

    async def handle_sync(self, scope: dict[str, Any], receive: Any, send: Any, prefix: str) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:  # the client went away before sending it all
            return
        try:
            set_script_prefix(prefix)
            request, error = self.create_request(scope, body_file)
            if request is None:  # too large (413) or unreadable (400)
                assert error is not None  # noqa: S101 - Django returns one or the other
                await self.send_response(error, send)
                await sync_to_async(error.close)()
                return
            response = await sync_to_async(self.respond, thread_sensitive=True)(request)
            await self.send_response(response, send)
            if isinstance(response, StreamingHttpResponse):
                # Its content was read while sending: close it (and the database connection its
                # rows came from) in the same thread, after that.
                await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    def respond(self, request: ASGIRequest) -> HttpResponseBase:
        """Signals, middleware and view in this one thread; a whole response is closed here too."""
        signals.request_started.send(sender=self.__class__)
        response = self.get_response(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]  # as Django's handlers do
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # the server chunks the body, as in Django's handler
        if not isinstance(response, StreamingHttpResponse):
            response.close()  # request_finished: the database connection goes back to the pool
        return response
