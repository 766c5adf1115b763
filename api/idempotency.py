"""``Idempotency-Key``: a retried write returns the first answer and never does the work twice.

The key is remembered per token, with a fingerprint of the request (method, path, body) and the
answer, in the **same transaction** as the write itself (:func:`once`). So:

- a retry after the first request committed replays its answer (``Idempotent-Replayed: true``);
- two requests with one key at the same moment: the second waits on the unique index until the
  first commits, then replays it (PostgreSQL); SQLite runs one writer at a time anyway;
- a first request that failed (a 4xx, or the process died) left nothing behind: the retry does
  the work;
- the same key with another request is refused (422), never silently answered with the wrong thing.

Keys are kept for a day (``KEPT_FOR``); the scheduler forgets older ones every hour
(:func:`forget_old_keys`, ``api.tasks.forget_idempotency_keys``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from api.models import ApiToken, IdempotentRequest
from api.problems import Problem
from common.db import insert, on_conflict

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
KEPT_FOR = timedelta(days=1)
FORGET_BATCH = 5000


def fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update(request.body)
    return digest.hexdigest()


def once(
    *, request: HttpRequest, token: ApiToken, key: str | None, work: Callable[[], tuple[int, Any]]
) -> tuple[int, Any, bool]:
    """Run ``work`` (which returns ``(status, JSON-able body)``) once per ``key``; returns
    ``(status, body, replayed)``. Without a key, ``work`` simply runs (in a transaction)."""
    if key is None:
        with transaction.atomic():
            return (*work(), False)
    if not KEY_PATTERN.match(key):
        raise Problem(
            400,
            _("An Idempotency-Key is 1 to 255 visible ASCII characters (a UUID will do)."),
            errors=[{"field": "header.Idempotency-Key", "message": _("Not a valid key."), "code": "invalid"}],
        )
    mark = fingerprint(request)
    with transaction.atomic():
        row = IdempotentRequest(token=token, key=key, fingerprint=mark, status=0, body={})
        # ON CONFLICT DO NOTHING, not a savepoint around create(): two round trips fewer per write.
        if not insert(row, conflict=on_conflict("token_id", "key")):
            first = IdempotentRequest.objects.get(token=token, key=key)
            if first.fingerprint != mark:
                raise Problem(
                    422,
                    _("This Idempotency-Key was already used for another request."),
                    errors=[{"field": "header.Idempotency-Key", "message": _("Already used."), "code": "reused"}],
                )
            return first.status, first.body, True
        status, body = work()
        row.status, row.body = status, body
        row.save(update_fields=["status", "body"])
    return status, body, False


def forget_old_keys(*, kept_for: timedelta = KEPT_FOR) -> int:
    """Delete the keys older than ``kept_for``, a batch at a time; returns how many went."""
    cutoff = timezone.now() - kept_for
    forgotten = 0
    while True:
        batch = list(
            IdempotentRequest.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:FORGET_BATCH]
        )
        if not batch:
            return forgotten
        forgotten += IdempotentRequest.objects.filter(pk__in=batch).delete()[0]
