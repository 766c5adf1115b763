"""One INSERT that may find its row already there: ``INSERT … ON CONFLICT … DO NOTHING RETURNING``.

Django's ``create`` inside a savepoint costs a lookup or a savepoint round trip per row, and
``bulk_create(ignore_conflicts=True)`` does not say which rows were written. The hot paths (a
webhook's raw event, a customer's message, identity and conversation) need both in one statement,
on PostgreSQL and SQLite alike (docs/performance.md, "Ceilings the design relies on"). Names come
from the model's own metadata; every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.db import DatabaseError, connection
from django.db.models import Model

# The largest value of an id column (BigAutoField, a signed 64-bit integer). A query parameter above
# it names no row; forms refuse it (SQLite cannot even be asked: OverflowError).
MAX_ID = 2**63 - 1


def on_conflict(*columns: str, where: str = "") -> str:
    """``ON CONFLICT (columns) [WHERE …] DO NOTHING``; ``where`` names a partial unique index's condition."""
    quote = connection.ops.quote_name
    target = f"({', '.join(quote(column) for column in columns)})"
    return f"ON CONFLICT {target} {f'WHERE {where} ' if where else ''}DO NOTHING"


def insert(instance: Model, *, conflict: str = "") -> bool:
    """INSERT an unsaved instance; False, with nothing written, when ``conflict`` found its row.

    On success the instance is saved as ``save()`` would leave it (its primary key set).
    """
    meta = instance._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    values = [f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(str(f.column)) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))}) {conflict + ' ' if conflict else ''}"
        f"RETURNING {quote(str(meta.pk.column))}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return True


# -- session locks: "is somebody alive working on this row?" ---------------------------------------


@contextmanager
def session_lock(namespace: int, key: int) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock on ``(namespace, key)`` for the block (nothing elsewhere).

    The lock belongs to the database session: if the process holding it dies, PostgreSQL drops it
    with the connection, so :func:`session_locks` tells a live worker from a dead one at once,
    without timeouts or heartbeats. Taken without waiting: a caller that does not get it goes on.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key % LOCK_KEYS])
    try:
        yield
    finally:
        # The session may be gone (the database restarted), and its lock with it.
        with suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key % LOCK_KEYS])


def session_locks(namespace: int) -> set[int] | None:
    """The keys of ``namespace`` some live session holds (modulo ``LOCK_KEYS``); None where unknown."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND classid = %s AND granted",
            [namespace],
        )
        return {int(row[0]) for row in cursor.fetchall()}


# Advisory lock keys are two 32-bit integers: a namespace and the row's id modulo this. Two ids
# that collide only make the sweeper wait for the longer, time-based limit.
LOCK_KEYS = 2**31
