"""Each fault of ``python -m bench.faults``, small: a few dozen signed Twilio webhooks through nginx
with Twilio's real retry policy (a failed connection only, once) while one fault happens, then
nothing lost, nothing stored twice, one conversation per customer; and replies through a flaky
Twilio with a worker killed mid-send: each delivered once or visibly failed.

The topology is production's (nginx, two web processes, two workers, beat: bench/topology.py) on
the test database behind a TCP proxy the bench cuts, with a redis-server of its own it stops."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from bench.faults import Harness, Options, run
from bench.topology import NGINX
from tests.conftest import database_url

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def harness(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any) -> Iterator[Harness]:
    from pathlib import Path

    if settings.EMBEDDED or not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("the fault bench needs PostgreSQL (DATABASE_URL)")
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (scripts/install-test-deps installs it)")
    running = Harness(database_url(), tmp_path_factory.mktemp("faults"))
    try:
        yield running.start()
    finally:
        running.stop()


def small(*faults: str, replies: bool = False) -> Options:
    return Options(
        rate=6,
        seconds=8,
        customers=10,
        faults=faults,
        redis_down=4,
        database_down=4,
        replies=replies,
        settle_timeout=30,
    )


def assert_nothing_lost_or_doubled(result: dict[str, Any]) -> None:
    assert result["webhooks_lost"] == 0, result
    assert result["webhooks_duplicated"] == 0, result
    assert result["customers"] == result["conversations"] == 10, result
    assert result["inbound_settled"], result


@pytest.mark.parametrize("fault", ["worker", "redis", "database", "web"])
def test_a_fault_loses_and_doubles_no_webhook_with_twilios_own_retries(harness, fault):
    result = run(harness, small(fault))
    assert_nothing_lost_or_doubled(result)
    assert result["seconds_to_drain_after_last_fault"] < 30, result


def test_replies_through_a_flaky_twilio_and_a_killed_worker_are_each_delivered_once_or_visibly_failed(harness):
    result = run(harness, small(replies=True))
    assert_nothing_lost_or_doubled(result)
    assert result["replies"] == 10, result
    assert result["replies_sent_twice"] == 0, result
    assert result["replies_lost"] == 0, result
    assert result["replies_delivered_once"] + result["replies_visibly_failed"] == 10, result
