"""One INSERT that may find its row already there: ``INSERT … ON CONFLICT … DO NOTHING RETURNING``.

Django's ``create`` inside a savepoint costs a lookup or a savepoint round trip per row, and
``bulk_create(ignore_conflicts=True)`` does not say which rows were written. The hot paths (a
webhook's raw event, a customer's message, identity and conversation) need both in one statement,
on PostgreSQL and SQLite alike (docs/performance.md, "Ceilings the design relies on"). Names come
from the model's own metadata; every value is a parameter.
"""

from __future__ import annotations

from django.db import connection
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
