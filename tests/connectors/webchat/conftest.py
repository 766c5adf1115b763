"""Fixtures shared by the website chat's tests (imported by name into the test modules)."""

from __future__ import annotations

import pytest

ORIGIN = "https://shop.example.test"
IDENTITY_SECRET = "site-identity-secret-for-tests"


@pytest.fixture(autouse=True)
def flush_limits(redis_server):
    """Rate-limit windows and open sockets are counted in Redis: each test starts with none counted."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    for key in client.scan_iter(f"{prefix}:webchat:*"):
        client.delete(key)
    from connectors.webchat import selectors, sessions

    selectors.forget_channels()
    sessions.forget_mailboxes()


@pytest.fixture
def webchat_channel(support):
    from inbox.services import channels as services

    return services.create_channel(
        kind="webchat",
        name="Website chat",
        team=support,
        channel_settings={"allowed_origins": ORIGIN, "identity_secret": IDENTITY_SECRET},
    )


@pytest.fixture
def other_site(sales):
    from inbox.services import channels as services

    return services.create_channel(
        kind="webchat",
        name="Other site",
        team=sales,
        channel_settings={"allowed_origins": "https://other.example.test"},
    )


@pytest.fixture(scope="session", autouse=True)
def close_store_threads_connections(django_db_setup, django_db_blocker):
    """The widget stores messages from threads of its own (connectors.webchat.sessions.STORE_THREADS).
    Under the test harness their connections stay open after each call, and PostgreSQL refuses to
    drop the test database while they are: close them in each of those threads at the end."""
    yield
    import threading

    from django.db import connections

    from connectors.webchat.sessions import STORE_THREADS

    workers = STORE_THREADS._max_workers
    barrier = threading.Barrier(workers, timeout=10)

    def close_here() -> None:
        connections.close_all()
        barrier.wait()  # one call in each thread

    with django_db_blocker.unblock():
        for future in [STORE_THREADS.submit(close_here) for _ in range(workers)]:
            future.result(timeout=20)
