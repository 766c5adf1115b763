from __future__ import annotations

from collections.abc import Iterator

import pytest

from hooks.services import forget_subscriptions
from tests.fakes.webhook_receiver import WebhookReceiver


@pytest.fixture(autouse=True)
def no_cached_subscriptions() -> Iterator[None]:
    """Each test starts and ends with the subscription cache empty (its rows roll back)."""
    forget_subscriptions()
    yield
    forget_subscriptions()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(slow_seconds=1.5).start()
    yield server
    server.stop()
