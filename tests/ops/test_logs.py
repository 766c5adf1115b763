"""Request ids and JSON logs: one id from the webhook to the worker's task and its broadcast."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from channels.testing import HttpCommunicator

from connectors.simulator import SIGNATURE_HEADER, SimulatorConnector
from inbox.models import InboundEvent
from inbox.tasks import ping, process_inbound_event
from ops import requestid, store
from tests.conftest import ROOT, Stack, database_url, wait_for

pytestmark = pytest.mark.django_db


def run_django(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database_url(), **env}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup();" + script],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_request_answers_with_the_id_it_was_given_or_a_new_one(client):
    assert client.get("/healthz", headers={"X-Request-ID": "lb-7f3a-01"})["X-Request-ID"] == "lb-7f3a-01"
    fresh = client.get("/healthz")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    # Not a plain token (spaces, a line break, too long): replaced, never echoed.
    for bad in ("two words", "x" * 129, "<script>"):
        answered = client.get("/healthz", headers={"X-Request-ID": bad})["X-Request-ID"]
        assert answered != bad
        assert re.fullmatch(r"[0-9a-f]{32}", answered)


@pytest.mark.django_db(transaction=True)
async def test_a_webhook_through_the_asgi_application_answers_with_its_id(sms):
    """Webhooks skip Django's middleware (LeanWebhooks): the id is set around the ASGI app."""
    from channels.db import database_sync_to_async

    from config.asgi import application

    body = b'{"from": "+15005550006", "text": "hello"}'
    signature = await database_sync_to_async(SimulatorConnector(sms).sign)(body)
    communicator = HttpCommunicator(
        application,
        "POST",
        f"/hooks/{sms.key}/inbound/",
        body=body,
        headers=[
            (b"content-type", b"application/json"),
            (SIGNATURE_HEADER.lower().encode(), signature.encode()),
            (b"x-request-id", b"provider-req-1"),
        ],
    )
    response = await communicator.get_response(timeout=10)
    headers = dict(response["headers"])
    assert response["status"] == 200
    assert headers[b"x-request-id"] == b"provider-req-1"
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


@pytest.mark.stack
def test_log_format_json_gives_one_json_object_per_line_with_the_request_id():
    script = (
        "from django.test import Client;"
        "r = Client().get('/healthz', headers={'X-Request-ID': 'probe-42'});"
        "print(r.status_code, r['X-Request-ID'])"
    )
    result = run_django(script, LOG_FORMAT="json", REDIS_URL="redis://127.0.0.1:1/0")
    assert result.stdout.split() == ["503", "probe-42"], result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    warning = next(line for line in lines if line["message"] == "health check: Redis does not answer")
    assert warning["request_id"] == "probe-42"
    assert warning["level"] == "WARNING"
    assert warning["logger"] == "inbox.views.webhooks"
    assert "time" in warning
    assert "Connection refused" in warning.get("exc_info", "") or "Error" in warning.get("exc_info", "")


@pytest.mark.stack
def test_plain_logs_carry_the_request_id_too():
    script = "from django.test import Client; Client().get('/healthz', headers={'X-Request-ID': 'probe-43'})"
    result = run_django(script, REDIS_URL="redis://127.0.0.1:1/0")
    line = next(line for line in result.stderr.splitlines() if "health check: Redis does not answer" in line)
    assert "WARNING inbox.views.webhooks [probe-43] health check" in line


def test_a_task_enqueued_during_a_request_carries_its_id_in_the_message():
    token = requestid.current.set("req-carried-1")
    try:
        ping.apply_async(queue="obs-request-id-probe")
    finally:
        requestid.current.reset(token)
    raw = store.client().lpop("obs-request-id-probe")
    assert raw is not None
    assert json.loads(raw)["headers"][requestid.TASK_HEADER] == "req-carried-1"


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_the_task_and_its_broadcast_under_the_request_id(sms, stack_env):
    """A real worker (JSON logs, DEBUG) processes an event enqueued under a request id."""
    worker = Stack(stack_env)
    try:
        worker.start_worker(name="obs-logs", queue="obs-logs")
        body = b'{"from": "+15005550006", "text": "where is my parcel?"}'
        event = InboundEvent.objects.create(channel=sms, dedupe_key="log-1", body=body, content_type="application/json")
        token = requestid.current.set("req-webhook-77")
        try:
            process_inbound_event.apply_async(args=(event.pk,), queue="obs-logs")
        finally:
            requestid.current.reset(token)
        wait_for(lambda: InboundEvent.objects.get(pk=event.pk).status == InboundEvent.Status.PROCESSED, timeout=30)

        def broadcast_lines():
            lines = [json.loads(line) for line in worker.tail().splitlines() if line.startswith("{")]
            return [line for line in lines if line["logger"] == "inbox.realtime.publish"]

        lines = wait_for(broadcast_lines, timeout=10)
        assert {line["request_id"] for line in lines} == {"req-webhook-77"}
    finally:
        worker.stop()


@pytest.fixture
def stack_env():
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1", "DB_CONN_MAX_AGE": "0"}
    env.update({"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG", "BOT_ENCODER": "tfidf"})
    # REDIS_URL stays the environment's: the worker computes a parallel test worker's own database from it
    # as this process did (config.settings.redis_url_for_test_worker).
    return env
