"""The API's periodic work: forgetting old idempotency keys (the scheduler runs it every hour)."""

from __future__ import annotations

from celery import shared_task

from api import idempotency


@shared_task
def forget_idempotency_keys() -> int:
    return idempotency.forget_old_keys()
