"""Shared fixtures: real Redis (embedded or REDIS_URL), real worker and web processes, personas.

The suite runs on PostgreSQL + Redis when DATABASE_URL and REDIS_URL are set, and on SQLite + the
embedded Redis otherwise.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from customers.models import Customer
from inbox.models import Channel, Operator, Team

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"


def _flush_again_after_a_deadlock() -> None:
    """A transactional test's flush (TRUNCATE) is tried again when PostgreSQL chose it to end a deadlock.

    A consumer's work handed to a thread (``database_sync_to_async``) may still be in a query when
    its test ends; the TRUNCATE then waits on that thread and the thread on the TRUNCATE, and
    PostgreSQL fails the flush, leaving the next test on the last test's rows. Once the thread's
    query is done, the flush goes through.
    """
    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    teardown = TransactionTestCase._fixture_teardown

    def _fixture_teardown(self: TransactionTestCase) -> None:
        for attempt in range(4):
            try:
                teardown(self)
                return
            except CommandError as error:
                if attempt == 3 or "deadlock detected" not in str(error.__cause__):
                    raise
                time.sleep(0.5)

    TransactionTestCase._fixture_teardown = _fixture_teardown


_flush_again_after_a_deadlock()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the real worker and web processes is a ``stack`` test, marked or not: ``make
    test-fast`` (``-m "not browser and not stack"``) never starts them."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session", autouse=True)
def redis_server() -> Iterator[str]:
    """The embedded redis-server when no REDIS_URL is given; flushed once per session."""
    import redis

    process = None
    if settings.EMBEDDED:
        from config.management.commands.run import start_embedded_redis

        socket_path = settings.EMBEDDED_REDIS_SOCKET
        try:
            redis.Redis(unix_socket_path=str(socket_path)).ping()
        except (redis.ConnectionError, FileNotFoundError):
            process = start_embedded_redis(socket_path)
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield settings.REDIS_URL
    if process is not None:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def fresh_webhook_counters(redis_server: str) -> None:
    """Refused webhook requests are counted per address in Redis (common.throttle), and the test
    client always comes from 127.0.0.1 (an ASGI communicator from no address): the suite's deliberate
    refusals must not add up to a 429 in an unrelated test."""
    from common.throttle import forget_webhook_failures

    for address in ("127.0.0.1", ""):
        forget_webhook_failures(address=address)


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    """Every test starts in the default language: a request in another language (the test client
    runs LocaleMiddleware in this thread) must not leak into the next test's messages."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """The test database as a URL, for the processes the tests start."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db.get('USER', '')}:{db.get('PASSWORD', '')}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Stack:
    """Real Parley processes (a Celery worker, and Daphne when asked) on the test database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []
        self.base_url = ""
        self.logs: list[Path] = []

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = settings.VAR_DIR / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("wb")
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT)
        self.processes.append(process)
        self.logs.append(log)
        return process

    def start_worker(self, *, name: str = "worker", queue: str | None = None) -> None:
        """A Celery worker on ``queue`` (the default queue unless given), answering pings as ``name@…``."""
        hostname = f"{name}@{socket.gethostname()}"
        self.start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--hostname",
                hostname,
                "--queues",
                queue or settings.CELERY_TASK_DEFAULT_QUEUE,
                "--without-mingle",
                "--without-gossip",
            ],
        )
        from config.celery import app

        # A worker imports the whole product and the bot's model: seconds on a quiet machine, more
        # than 30 s once on a loaded CI machine.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if app.control.ping(destination=[hostname], timeout=0.5):
                return
        raise RuntimeError("the worker did not start:\n" + self.tail())

    def start_web(self, *, name: str = "web") -> None:
        port = free_port()
        self.start(
            name, [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
        )
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the web process did not start:\n" + self.tail())

    def tail(self) -> str:
        return "\n".join(log.read_text(errors="replace")[-3000:] for log in self.logs if log.exists())

    def stop(self) -> None:
        """Stop every process and its children, and return only once they are gone."""
        self.stop_processes(self.processes)

    @staticmethod
    def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
        """Terminate ``processes``, kill what outlives a 10 s grace, and reap their children.

        A Celery worker killed after its 10 s grace leaves its pool processes behind; one still in a
        transaction then deadlocked the next test's flush (TRUNCATE) on a loaded CI machine. A worker
        still starting when told to stop can take longer than the grace (CI, embedded default).
        """
        import psutil

        children: list[psutil.Process] = []
        for process in processes:
            with contextlib.suppress(psutil.Error):
                children += psutil.Process(process.pid).children(recursive=True)
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        _gone, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(alive, timeout=5)


@pytest.fixture(scope="session")
def stack(django_db_setup: Any, django_db_blocker: Any, redis_server: str) -> Iterator[Stack]:
    """A real worker and a real Daphne, sharing the test database. Use with ``transactional_db``."""
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1", "DB_CONN_MAX_AGE": "0"}
    # The bot's tests calibrate the TF-IDF encoder; the processes must not load the big models.
    env.setdefault("BOT_ENCODER", "tfidf")
    # REDIS_URL comes from the environment as is: the processes compute a parallel worker's own
    # database from it as this process did (config.settings.redis_url_for_test_worker).
    running = Stack(env)
    try:
        running.start_worker()
        running.start_web()
        yield running
    finally:
        running.stop()


def wait_for(condition: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll until ``condition()`` is truthy; returns its value or fails the test with a message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")


# -- personas -----------------------------------------------------------------------------------


def make_team(name: str) -> Team:
    return Team.objects.create(name=name)


def make_operator(username: str, team: Team, display_name: str) -> Operator:
    """An operator of ``team`` who signs in with :data:`PASSWORD`."""
    operator = Operator.objects.create_user(username, f"{username}@example.test", PASSWORD, display_name=display_name)
    operator.teams.add(team)
    return operator


def make_admin() -> Operator:
    return Operator.objects.create_superuser("admin", "admin@example.test", PASSWORD)


def make_sms_line(team: Team) -> Channel:
    from inbox.services import channels

    return channels.create_channel(kind="simulator", name="SMS", team=team, channel_settings={"medium": "sms"})


@pytest.fixture
def support(db: None) -> Team:
    return make_team("Support")


@pytest.fixture
def sales(db: None) -> Team:
    return make_team("Sales")


@pytest.fixture
def alice(support: Team) -> Operator:
    """An operator of the Support team."""
    return make_operator("alice", support, "Alice")


@pytest.fixture
def bob(sales: Team) -> Operator:
    """An operator of the Sales team only."""
    return make_operator("bob", sales, "Bob")


@pytest.fixture
def admin(db: None) -> Operator:
    return make_admin()


@pytest.fixture
def sms(support: Team) -> Channel:
    return make_sms_line(support)


@pytest.fixture
def whatsapp(support: Team) -> Channel:
    from inbox.services import channels

    return channels.create_channel(
        kind="simulator", name="WhatsApp", team=support, channel_settings={"medium": "whatsapp"}
    )


@pytest.fixture
def customer(db: None) -> Customer:
    return Customer.objects.create(name="Alice Customer")
