from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from audit.models import Entry


def entries(
    *,
    action: str | None = None,
    kind: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Entry]:
    """Audit entries, newest first, filtered; ``actor`` is a username, ``target`` a name or an id."""
    rows = Entry.objects.order_by("-id")
    if action:
        rows = rows.filter(action=action)
    if kind:
        rows = rows.filter(target_type=kind)
    if actor:
        rows = rows.filter(actor__iexact=actor)
    if target:
        rows = rows.filter(Q(target__icontains=target) | Q(target_id=target))
    if since:
        rows = rows.filter(at__gte=since)
    if until:
        rows = rows.filter(at__lte=until)
    return rows


def page(rows: QuerySet[Entry], *, before: int | None, size: int = 50) -> tuple[list[Entry], int | None]:
    """One page of ``rows`` older than the entry ``before``; and the cursor of the next page, if any."""
    if before:
        rows = rows.filter(id__lt=before)
    found = list(rows[: size + 1])
    return found[:size], (found[size - 1].pk if len(found) > size else None)
