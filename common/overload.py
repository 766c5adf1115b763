"""Overload is a 503 with ``Retry-After``, never a 500.

When more requests run at once than the database pool lends connections (``DB_POOL_MAX``), a
request waits ``DB_POOL_TIMEOUT`` seconds and then ``psycopg_pool.PoolTimeout`` (which Django
raises as ``OperationalError``) ends it. The same error comes when PostgreSQL is down or refuses a
connection. Neither is a bug in the request: the client should try again shortly, which is what a
503 with ``Retry-After`` says (the webhook path answers the same, inbox/views/webhooks.py). The API
answers it as a problem (api/problems.py); :class:`OverloadMiddleware` does it for the pages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait: about one pool timeout, by when the backlog has moved on.
RETRY_AFTER = 5


def is_overload(exc: BaseException) -> bool:
    """True for "no database connection to be had right now" (pool timeout, database unreachable)."""
    return isinstance(exc, OperationalError)


def log_overload(request: HttpRequest, exc: BaseException) -> None:
    # A warning, not an error: the client is told to retry; a burst of these is a capacity signal.
    logger.warning("no database connection for %s %s (%s): answered 503", request.method, request.path, exc)


class OverloadMiddleware:
    """A page whose view found no database connection: 503 + ``Retry-After`` instead of a 500.

    Sync and async: in an async chain (the website chat's long poll) a sync-only middleware would
    put everything below it, the waiting view too, into a thread of its own."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        return self.get_response(request)  # a coroutine in an async chain, awaited by Django

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_overload(exception):
            return None
        log_overload(request, exception)
        response = HttpResponse(
            _("Parley is busy right now. Please try again in a few seconds.") + "\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(RETRY_AFTER)
        return response
