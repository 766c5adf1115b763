"""Keyset pagination cursors: opaque to clients, exact for the database (newest first, then by id)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import Q


class InvalidCursor(ValueError):
    """A pagination cursor that this module did not make (tampered with or truncated)."""


def encode_cursor(moment: datetime, pk: int) -> str:
    """``<microseconds since the epoch>.<id>``: opaque to clients, exact for the keyset."""
    return f"{int(moment.timestamp() * 1_000_000)}.{pk}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        micros, pk = cursor.split(".", 1)
        moment = datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC)
        return moment, int(pk)
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidCursor(cursor) from exc


def older_than(cursor: str | None, time_field: str) -> Q:
    """Rows strictly after ``cursor`` in (``time_field`` desc, id desc) order."""
    if not cursor:
        return Q()
    moment, pk = decode_cursor(cursor)
    # The redundant ``<=`` is what an index range can start from; the OR alone makes PostgreSQL
    # walk the index from the newest row and filter, so page N would cost N pages.
    return Q(**{f"{time_field}__lte": moment}) & (
        Q(**{f"{time_field}__lt": moment}) | Q(**{time_field: moment, "pk__lt": pk})
    )


def later_than(cursor: str | None, time_field: str) -> Q:
    """Rows strictly after ``cursor`` in (``time_field`` asc, id asc) order."""
    if not cursor:
        return Q()
    moment, pk = decode_cursor(cursor)
    return Q(**{f"{time_field}__gte": moment}) & (
        Q(**{f"{time_field}__gt": moment}) | Q(**{time_field: moment, "pk__gt": pk})
    )
