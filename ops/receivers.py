"""What ops listens to: the core's hooks, Django's and django-axes' sign-in signals, Celery's task
signals. Connected once, in ``OpsConfig.ready()``. Receivers only count in memory (``ops.counters``)
or set a context variable: none of them may slow down or break what it observes."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ops import counters
from ops.metrics import BOT_DECISIONS, DELIVERY, DELIVERY_BUCKETS, LOGIN_FAILURES, LOGIN_LOCKOUTS, WEBHOOKS

# Statuses answered before a channel was found (an unknown key, an address past the throttle): the
# key may be made up, so it is not kept (a scan of random keys must not grow the counters).
UNTRUSTED_KEY_STATUSES = {404, 429}


def webhook_answered(key: str = "", status: int = 0, **kwargs: Any) -> None:
    kept = "-" if status in UNTRUSTED_KEY_STATUSES else key
    counters.increment(WEBHOOKS, {"key": kept, "status": str(status)})


def message_sent(kind: str = "", seconds: float = 0.0, **kwargs: Any) -> None:
    counters.observe(DELIVERY, {"kind": kind}, seconds, DELIVERY_BUCKETS)


def bot_decision_saved(instance: Any = None, created: bool = False, **kwargs: Any) -> None:
    if created:
        action = str(instance.action)
        transaction.on_commit(lambda: counters.increment(BOT_DECISIONS, {"action": action}))


def login_failed(**kwargs: Any) -> None:
    counters.increment(LOGIN_FAILURES)


def locked_out(**kwargs: Any) -> None:
    counters.increment(LOGIN_LOCKOUTS)
