"""/healthz/deep: behind a token; parts, queue ages and the sweepers' last runs; 503 when stale."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone

from inbox.models import InboundEvent
from ops import periodic, store

pytestmark = pytest.mark.django_db

TOKEN = "health-token-for-the-tests-0123456789"


@pytest.fixture
def health_token(settings):
    settings.HEALTH_TOKEN = TOKEN
    return TOKEN


def deep(client, token: str = TOKEN):
    return client.get("/healthz/deep", headers={"Authorization": f"Bearer {token}"})


def task(name: str):
    current_app.loader.import_default_modules()  # the apps' tasks modules (Celery's autodiscovery)
    return current_app.tasks[name]


def run_every_periodic_task() -> None:
    """Each scheduled task, run here for real (``apply``): its success is recorded by the signal."""
    for name in periodic.scheduled():
        task(name).apply(throw=True)


def test_it_does_not_exist_until_a_token_is_configured(client, admin):
    assert client.get("/healthz/deep").status_code == 404
    client.force_login(admin)
    assert client.get("/healthz/deep").status_code == 404


def test_the_health_token_or_the_metrics_token_opens_it(client, settings, health_token):
    assert client.get("/healthz/deep").status_code == 401
    assert deep(client, "not-the-token-0123456789").status_code == 401
    assert deep(client).status_code in {200, 503}
    settings.HEALTH_TOKEN = ""
    settings.METRICS_TOKEN = "metrics-token-for-the-tests-0123456789"
    assert deep(client, "metrics-token-for-the-tests-0123456789").status_code in {200, 503}


def test_a_periodic_task_that_never_completed_is_stale(client, health_token):
    store.client().delete(store.key("periodic"))
    response = deep(client)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["sweepers"]["ok"] is False
    assert body["sweepers"]["tasks"]["inbox.tasks.sweep_outbox"] == {
        "ok": False,
        "seconds_ago": None,
        "stale_after": 120.0,
    }


@pytest.mark.django_db(transaction=True)  # a task run closes the connection (config.celery)
def test_a_completed_sweep_is_recorded_by_the_task_signal(client, health_token):
    store.client().delete(store.key("periodic"))
    task("inbox.tasks.sweep_outbox").apply(throw=True)
    tasks = deep(client).json()["sweepers"]["tasks"]
    assert tasks["inbox.tasks.sweep_outbox"]["ok"] is True
    assert tasks["inbox.tasks.sweep_outbox"]["seconds_ago"] < 5
    assert tasks["inbox.tasks.sweep_inbound_events"]["ok"] is False


@pytest.mark.django_db(transaction=True)  # a task run closes the connection (config.celery)
def test_a_sweep_that_ran_too_long_ago_is_stale(client, health_token):
    run_every_periodic_task()
    store.client().hset(store.key("periodic"), "inbox.tasks.wake_snoozed", "1000.0")
    body = deep(client).json()
    assert body["sweepers"]["tasks"]["inbox.tasks.wake_snoozed"]["ok"] is False
    assert body["sweepers"]["tasks"]["inbox.tasks.sweep_outbox"]["ok"] is True


@pytest.mark.django_db(transaction=True)  # a task run closes the connection (config.celery)
def test_an_inbound_event_waiting_too_long_makes_it_degraded(client, sms, health_token):
    run_every_periodic_task()
    event = InboundEvent.objects.create(channel=sms, dedupe_key="late", body=b"{}")
    assert deep(client).json()["backlog"]["ok"] is True
    InboundEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    response = deep(client)
    assert response.status_code == 503
    backlog = response.json()["backlog"]
    assert backlog["ok"] is False
    assert backlog["inbound"]["ok"] is False
    assert backlog["inbound"]["pending"] == 1
    assert backlog["inbound"]["oldest_pending_seconds"] >= 299
    assert backlog["outbox"]["ok"] is True


@pytest.mark.django_db(transaction=True)
def test_all_well_is_200_with_a_worker_and_fresh_sweeps(client, stack, health_token):
    run_every_periodic_task()
    response = deep(client)
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["worker"]["workers"] >= 1
    assert body["database"]["ok"] is True
    assert body["redis"]["ok"] is True
    assert set(body["celery"]["waiting"]) >= {current_app.conf.task_default_queue}
