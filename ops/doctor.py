"""``manage.py doctor``: what a deployment needs, checked one by one, each failure with what to fix.

Sections: the deployment settings (Django's ``check --deploy`` and Parley's own), the database
(answers, migrations applied), Redis, the workers (answer a ping, consume the queues), and every
active channel, asked through its connector's ``check()`` (credentials and webhook registration at
the provider, nothing sent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.core import checks
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from inbox.models import Channel
from inbox.transport import connector_for
from ops import queues, store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    section: str
    ok: bool
    detail: str


def settings_findings() -> Iterator[Finding]:
    """Django's deployment checks (``check --deploy``) and the settings Parley adds."""
    messages = [m for m in checks.run_checks(include_deployment_checks=True) if m.level >= checks.WARNING]
    silenced = set(settings.SILENCED_SYSTEM_CHECKS)
    for message in messages:
        if message.id in silenced:
            continue
        hint = f" Fix: {message.hint}" if message.hint else ""
        yield Finding("settings", False, f"{message.id}: {message.msg}{hint}")
    if not messages:
        yield Finding("settings", True, "Django's deployment checks pass")
    if not settings.PRODUCTION:
        yield Finding(
            "settings", False, "PARLEY_PRODUCTION is not set: set PARLEY_PRODUCTION=1 to refuse development defaults"
        )
    if settings.EMBEDDED:
        yield Finding("settings", False, "REDIS_URL is not set: the embedded Redis is for one machine and development")
    if not (settings.METRICS_TOKEN or settings.METRICS_ALLOW_FROM):
        yield Finding("settings", True, "/metrics is off (set METRICS_TOKEN or METRICS_ALLOW_FROM to scrape it)")
    else:
        yield Finding("settings", True, "/metrics and /healthz/deep are on")
    yield Finding(
        "settings", True, f"errors go to Sentry: {'yes' if settings.SENTRY_DSN else 'no (SENTRY_DSN not set)'}"
    )


def database_findings() -> Iterator[Finding]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        yield Finding("database", False, f"{connection.vendor} does not answer: {exc} (check DATABASE_URL)")
        return
    yield Finding("database", True, f"{connection.vendor} answers")
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _backwards in plan[:5])
        yield Finding("database", False, f"{len(plan)} migrations not applied ({names}…): run manage.py migrate")
    else:
        yield Finding("database", True, "every migration is applied")


def redis_findings() -> Iterator[Finding]:
    try:
        store.client().ping()
    except Exception as exc:
        yield Finding("redis", False, f"Redis does not answer: {exc} (check REDIS_URL)")
        return
    yield Finding("redis", True, "Redis answers")


def worker_findings(timeout: float) -> Iterator[Finding]:
    try:
        replies = current_app.control.ping(timeout=timeout)
        active = current_app.control.inspect(timeout=timeout).active_queues() or {} if replies else {}
    except Exception as exc:
        yield Finding("worker", False, f"the workers cannot be asked: {exc}")
        return
    if not replies:
        yield Finding("worker", False, f"no worker answered within {timeout:g} s: start `celery -A config worker`")
        return
    yield Finding("worker", True, f"{len(replies)} worker(s) answered")
    consumed = {str(queue["name"]) for found in active.values() for queue in found}
    for name in queues.celery_queue_names():
        if name in consumed:
            yield Finding("worker", True, f"queue {name!r} has a worker")
        else:
            yield Finding("worker", False, f"no worker consumes queue {name!r}: start one with --queues {name}")


def channel_findings() -> Iterator[Finding]:
    for channel in Channel.objects.filter(is_active=True).order_by("pk"):
        label = f"#{channel.pk} {channel.name!r} ({channel.kind})"
        try:
            results = connector_for(channel).check()
        except Exception as exc:  # a connector's bug must not hide the other channels
            logger.exception("checking channel %s crashed", channel.pk)
            yield Finding("channels", False, f"{label}: the check crashed: {type(exc).__name__}: {exc}")
            continue
        if not results:
            yield Finding("channels", True, f"{label}: nothing to ask the provider")
        for result in results:
            yield Finding("channels", result.ok, f"{label} {result.what}: {result.detail}")


SECTIONS: dict[str, Callable[..., Iterator[Finding]]] = {
    "settings": settings_findings,
    "database": database_findings,
    "redis": redis_findings,
    "worker": worker_findings,
    "channels": channel_findings,
}


def examine(*, skip: set[str], timeout: float) -> Iterator[Finding]:
    for name, section in SECTIONS.items():
        if name in skip:
            continue
        yield from section(timeout) if name == "worker" else section()
