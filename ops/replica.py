"""Reads of heavy pages from a PostgreSQL replica (``DATABASE_REPLICA_URL``), never at the cost of truth.

- Only GET requests under ``DATABASE_REPLICA_PATHS`` (reports and search by default) read from
  the replica; every write, and every other page, uses the primary.
- Sign-in state (sessions, operators, the throttle, the audit log) is always read from the primary:
  a session written a moment ago must not look signed out.
- A browser that wrote something (any POST, PUT, PATCH or DELETE) reads from the primary for the
  next ``DATABASE_REPLICA_PIN_SECONDS``: an operator sees what they just did.
- The replica is used only while it answers and lags less than ``DATABASE_REPLICA_MAX_LAG``
  seconds; this is checked at most every ``HEALTHY_RECHECK`` seconds per process (every
  ``DOWN_RECHECK`` once it failed), so a replica that is down costs one connection attempt now and
  then, not one per request. Otherwise the primary answers.
"""

from __future__ import annotations

import logging
import threading
import time
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponseBase

logger = logging.getLogger(__name__)

REPLICA = "replica"
PIN_COOKIE = "parley_primary"
HEALTHY_RECHECK = 5.0
DOWN_RECHECK = 30.0
# Apps whose rows decide who is signed in and what they may do: always from the primary.
PRIMARY_APPS = {"sessions", "auth", "contenttypes", "admin", "axes", "audit"}

reading_replica: ContextVar[bool] = ContextVar("parley_reading_replica", default=False)

# Seconds the replica is behind: 0 when it replayed all it received (an idle primary makes
# pg_last_xact_replay_timestamp() look old), else the age of the last transaction it replayed.
LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
END
"""


class Health:
    """Whether the replica may be read now, decided at most every few seconds per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = False
        self.next_check = 0.0

    def usable(self) -> bool:
        now = time.monotonic()
        with self.lock:
            if now < self.next_check:
                return self.ok
            self.next_check = now + DOWN_RECHECK  # others wait while this thread asks
        ok = self.ask()
        with self.lock:
            self.ok = ok
            self.next_check = time.monotonic() + (HEALTHY_RECHECK if ok else DOWN_RECHECK)
        return ok

    def ask(self) -> bool:
        connection = connections[REPLICA]
        try:
            with connection.cursor() as cursor:
                cursor.execute(LAG_SQL)
                row = cursor.fetchone()
            lag = float(row[0]) if row else 0.0
        except Exception as exc:
            logger.warning("the database replica is not used: it does not answer (%s)", type(exc).__name__)
            connection.close()
            return False
        if lag > settings.DATABASE_REPLICA_MAX_LAG:
            logger.warning("the database replica is not used: it lags %.1f s", lag)
            return False
        return True

    def forget(self) -> None:
        with self.lock:
            self.next_check = 0.0


health = Health()


def configured() -> bool:
    return REPLICA in settings.DATABASES


def wants_replica(request: HttpRequest) -> bool:
    if request.method not in ("GET", "HEAD") or not configured():
        return False
    if not any(request.path.startswith(prefix) for prefix in settings.DATABASE_REPLICA_PATHS):
        return False
    try:
        pinned_until = float(request.COOKIES.get(PIN_COOKIE, "0"))
    except ValueError:
        pinned_until = 0.0
    return pinned_until < time.time() and health.usable()


class ReplicaReadsMiddleware:
    """Sets :data:`reading_replica` for the requests that may use the replica; pins writers to the
    primary. Sync and async (an async view must not be pushed into a thread)."""

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
        token = reading_replica.set(wants_replica(request))
        try:
            response = self.get_response(request)
        finally:
            reading_replica.reset(token)
        return pin_writer(request, response)

    async def acall(self, request: HttpRequest) -> HttpResponseBase:
        wanted = configured() and await sync_to_async(wants_replica)(request)
        token = reading_replica.set(wanted)
        try:
            response: HttpResponseBase = await self.get_response(request)
        finally:
            reading_replica.reset(token)
        return pin_writer(request, response)


def pin_writer(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """A browser that wrote reads from the primary for a while (a cookie with the time it ends)."""
    if configured() and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        seconds = settings.DATABASE_REPLICA_PIN_SECONDS
        response.set_cookie(
            PIN_COOKIE,
            f"{time.time() + seconds:.0f}",
            max_age=seconds,
            httponly=True,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
        )
    return response


class ReplicaRouter:
    """Reads go to the replica only inside a request the middleware chose; writes never do."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        if not reading_replica.get():
            return None
        meta = model._meta
        if meta.app_label in PRIMARY_APPS or meta.label == settings.AUTH_USER_MODEL:
            return None
        return REPLICA

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return True  # the same data on both

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        return db == "default"  # the replica follows the primary's schema by replication
