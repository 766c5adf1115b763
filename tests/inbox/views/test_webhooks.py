from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from connectors.simulator import SIGNATURE_HEADER, SimulatorConnector
from inbox.models import InboundEvent
from tests.conftest import ROOT, database_url, wait_for


def post(client, channel, body: bytes, *, signature: str | None = None, endpoint: str = "inbound"):
    signature = SimulatorConnector(channel).sign(body) if signature is None else signature
    return client.post(
        f"/hooks/{channel.key}/{endpoint}/",
        data=body,
        content_type="application/json",
        headers={SIGNATURE_HEADER: signature},
    )


def test_a_signed_event_is_stored_and_acknowledged(client, sms):
    response = post(client, sms, json.dumps({"id": "m1", "from": "+15005550006", "text": "hi"}).encode())
    assert response.status_code == 200
    assert InboundEvent.objects.get().dedupe_key == "inbound:m1"


def test_a_forged_signature_is_refused_and_nothing_is_stored(client, sms):
    response = post(client, sms, b'{"id": "m1", "from": "+15005550006"}', signature="0" * 64)
    assert response.status_code == 403
    assert not InboundEvent.objects.exists()


def test_a_missing_signature_is_refused(client, sms):
    response = client.post(f"/hooks/{sms.key}/inbound/", data=b"{}", content_type="application/json")
    assert response.status_code == 403


def test_a_malformed_body_gets_a_clear_400(client, sms):
    response = post(client, sms, b"not json")
    assert response.status_code == 400
    assert b"not JSON" in response.content
    assert not InboundEvent.objects.exists()


def test_an_unknown_channel_key_is_404(client, db):
    assert client.post("/hooks/nope/inbound/", data=b"{}", content_type="application/json").status_code == 404


def test_an_unknown_endpoint_is_404(client, sms):
    assert post(client, sms, b"{}", endpoint="nope").status_code == 404


def test_an_oversized_payload_gets_413(client, sms, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"id": "big", "from": "+15005550006", "text": "x" * 5000}).encode()
    assert post(client, sms, body).status_code == 413
    assert not InboundEvent.objects.exists()


def _healthz_in_subprocess(**env: str) -> tuple[int, dict]:
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/healthz'); print(r.status_code); print(r.content.decode())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status, body = result.stdout.strip().splitlines()[-2:]
    return int(status), json.loads(body)


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_healthz_is_200_when_database_redis_and_worker_answer(client, stack):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["worker"]["ok"] is True


@pytest.mark.stack
@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_down():
    status, body = _healthz_in_subprocess(REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL=database_url())
    assert status == 503
    assert body["redis"]["ok"] is False
    assert body["database"]["ok"] is True


# -- through the ASGI application, as Daphne serves them: the lean path without middleware ------------


async def asgi_post(path: str, body: bytes, headers: list[tuple[bytes, bytes]]):
    from channels.testing import HttpCommunicator

    from config.asgi import application

    communicator = HttpCommunicator(
        application, "POST", path, body=body, headers=[(b"content-type", b"application/json"), *headers]
    )
    return await communicator.get_response(timeout=10)


def _settle_events() -> None:
    from config.celery import app

    if app.control.ping(timeout=0.5):
        wait_for(lambda: not InboundEvent.objects.exclude(status=InboundEvent.Status.PROCESSED).exists())


@pytest.mark.django_db(transaction=True)
async def test_webhooks_served_by_the_asgi_app_skip_the_middleware_but_keep_their_answers(sms, settings):
    from asgiref.sync import sync_to_async
    from django.db import connections

    body = json.dumps({"id": "lean-1", "from": "+15005550006", "text": "hi"}).encode()
    signed = [(SIGNATURE_HEADER.lower().encode(), SimulatorConnector(sms).sign(body).encode())]
    try:
        stored = await asgi_post(f"/hooks/{sms.key}/inbound/", body, signed)
        forged = await asgi_post(f"/hooks/{sms.key}/inbound/", body, [(SIGNATURE_HEADER.lower().encode(), b"0" * 64)])
        unknown = await asgi_post("/hooks/nope/inbound/", body, signed)
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
        too_large = await asgi_post(f"/hooks/{sms.key}/inbound/", body, signed)
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
        page = await asgi_post("/login/", b"", [])
        events = await sync_to_async(lambda: list(InboundEvent.objects.values_list("dedupe_key", flat=True)))()
        # The stored event went to the broker: when the session's worker runs (a stack test ran
        # before), let it finish the event, or its transaction and the test's flush deadlock.
        await sync_to_async(_settle_events)()
    finally:
        await sync_to_async(connections.close_all)()
    assert [stored["status"], forged["status"], unknown["status"], too_large["status"]] == [200, 403, 404, 413]
    assert events == ["inbound:lean-1"]
    # The rest of the site still goes through Django's middleware (LocaleMiddleware sets
    # Content-Language); a webhook does not, yet every answer keeps the security headers.
    page_headers = {name.lower(): value for name, value in page["headers"]}
    assert b"content-language" in page_headers
    assert page_headers[b"x-content-type-options"] == b"nosniff"
    for response in (stored, forged, unknown, too_large):
        headers = {name.lower(): value for name, value in response["headers"]}
        assert b"content-language" not in headers
        assert headers[b"x-content-type-options"] == b"nosniff"
        assert headers[b"x-frame-options"] == b"DENY"
        assert headers[b"referrer-policy"] == b"same-origin"


def test_a_webhook_reads_its_channel_from_memory_and_sees_it_switched_off_at_once(
    client, sms, django_assert_num_queries
):
    first = json.dumps({"id": "c1", "from": "+15005550006", "text": "hi"}).encode()
    assert post(client, sms, first).status_code == 200
    second = json.dumps({"id": "c2", "from": "+15005550006", "text": "again"}).encode()
    with django_assert_num_queries(1):  # the event's INSERT only
        assert post(client, sms, second).status_code == 200
    sms.is_active = False
    sms.save()
    assert post(client, sms, json.dumps({"id": "c3", "from": "+1500555000"}).encode()).status_code == 404
