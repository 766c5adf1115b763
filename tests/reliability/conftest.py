"""A Parley stack whose PostgreSQL and Redis can be cut: each reached through a TCP proxy.

The machine's PostgreSQL and Redis are shared, so faults never stop them: the web, worker and
beat processes started here reach them through :class:`bench.tcpproxy.TcpProxy`, which the tests
cut (connections reset, new ones refused) and restore. Needs PostgreSQL and a TCP Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from bench.tcpproxy import TcpProxy
from tests.conftest import Stack, database_url


class FaultyStack(Stack):
    """A :class:`tests.conftest.Stack` plus the proxies in front of PostgreSQL and Redis."""

    database: TcpProxy
    redis: TcpProxy
    spool_dir: Path

    def spooled(self) -> list[Path]:
        return sorted(self.spool_dir.glob("*.json"))

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        """Each process under :mod:`tests.reliability.supervise`, which starts it again when it exits,
        as production's systemd units do: the faults here are survived by the product and its supervisor."""
        return super().start(name, [sys.executable, "-m", "tests.reliability.supervise", *command])

    def start_worker(self, *, name: str = "worker", queue: str | None = None) -> None:
        """A worker on this stack's own queue, and on the default one the test process sends to.

        This stack's web and beat send to their own queue (``PARLEY_QUEUE``), so the session's
        other worker, which may be running and sees another spool directory, never takes their
        tasks: the spool's drain was lost to it once, and a test waited for a drain that never came.
        """
        own = self.env["PARLEY_QUEUE"]
        super().start_worker(name=name, queue=queue or f"{own},{settings.CELERY_TASK_DEFAULT_QUEUE}")


def _through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture(scope="module")
def faulty(
    django_db_setup: Any, django_db_blocker: Any, redis_server: str, tmp_path_factory: Any
) -> Iterator[FaultyStack]:
    if settings.EMBEDDED or not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("faults are cut with TCP proxies: needs DATABASE_URL (PostgreSQL) and REDIS_URL")
    direct_db = database_url()
    db_parts = urlsplit(direct_db)
    redis_parts = urlsplit(settings.REDIS_URL)
    database = TcpProxy(db_parts.hostname or "127.0.0.1", db_parts.port or 5432).restore()
    redis = TcpProxy(redis_parts.hostname or "127.0.0.1", redis_parts.port or 6379).restore()
    folder = tmp_path_factory.mktemp("faulty")
    env = {
        **os.environ,
        "DATABASE_URL": _through(direct_db, database),
        "REDIS_URL": _through(settings.REDIS_URL, redis),
        "WEBHOOK_SPOOL_DIR": str(folder / "spool"),
        "PARLEY_QUEUE": f"{settings.CELERY_TASK_DEFAULT_QUEUE}-faulty",
        "PARLEY_VAR_DIR": str(folder),
        "PYTHONUNBUFFERED": "1",
        "BOT_ENCODER": "tfidf",
    }
    running = FaultyStack(env)
    running.database, running.redis, running.spool_dir = database, redis, folder / "spool"
    try:
        running.start_worker(name="faulty-worker")
        running.start_web(name="faulty-web")  # its own log: the session's web.log stays whole
        running.start(
            "faulty-beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-s",
                str(folder / "beat-schedule"),
                "--loglevel",
                "INFO",
            ],
        )
        yield running
    finally:
        running.stop()
        database.close()
        redis.close()


def heal(stack: FaultyStack) -> None:
    """Both proxies up, the spool drained, and the web process's "database down" pause over.

    Tests run in random order on one stack: a test must not start with an earlier test's spooled
    webhooks (the scheduler drains them within seconds) or inside the few seconds after a failure
    during which the web process spools without trying the database (inbox/spool.py).
    """
    from inbox import spool

    stack.database.restore()
    stack.redis.restore()
    deadline = time.monotonic() + 60
    while stack.spooled():
        if time.monotonic() > deadline:
            pytest.fail(f"the spool was not drained within 60 s; the stack's logs end with:\n{stack.tail()}")
        time.sleep(0.5)
    time.sleep(spool.DOWN_SECONDS + 0.5)


@pytest.fixture
def healed(faulty: FaultyStack) -> Iterator[FaultyStack]:
    """The faulty stack, healed (:func:`heal`) before and after the test."""
    heal(faulty)
    yield faulty
    heal(faulty)


def kill_worker(stack: Stack, name: str = "faulty-worker") -> None:
    """SIGKILL a Celery worker and its pool processes: a machine losing it mid-task."""
    import psutil

    for process in list(stack.processes):
        if f"{name}@" in " ".join(map(str, process.args)):
            parent = psutil.Process(process.pid)
            for child in parent.children(recursive=True):
                child.kill()
            parent.kill()
            process.wait(timeout=10)
            stack.processes.remove(process)


def operator_session(operator: Any) -> dict[str, str]:
    """Cookies of a signed-in ``operator`` (a session row, as the sign-in page makes) and a CSRF token."""
    from django.test import Client

    client = Client()
    client.force_login(operator)
    token = "c" * 32
    return {"sessionid": client.cookies["sessionid"].value, "csrftoken": token}


@pytest.fixture(scope="module")
def topology(django_db_setup: Any, django_db_blocker: Any, redis_server: str, tmp_path_factory: Any) -> Iterator[Any]:
    """``make prod-like`` on the test database: nginx, two web processes, two workers, beat (bench/topology.py)."""
    from bench.topology import NGINX, Topology, topology_env

    if settings.EMBEDDED or not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("production's topology needs DATABASE_URL (PostgreSQL) and REDIS_URL")
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (scripts/install-test-deps installs it)")
    folder = tmp_path_factory.mktemp("topology")
    env = topology_env()
    env.update({"DATABASE_URL": database_url(), "PARLEY_VAR_DIR": str(folder / "var"), "BOT_ENCODER": "tfidf"})
    running = Topology(run_dir=folder / "run", env=env)
    try:
        running.start()
        running.wait_ready()
        yield running
    finally:
        running.stop()
