"""/metrics: who may read it, and every number it promises, moved by the real thing it counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from celery import current_app
from django.test import Client
from django.utils import timezone

from bot.models import BotDecision
from connectors.simulator import SIGNATURE_HEADER, SimulatorConnector
from inbox.models import InboundEvent, Message
from inbox.services import outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from ops import counters, store
from tests.conftest import PASSWORD, ROOT, database_url, wait_for
from tests.ops.conftest import TOKEN, scrape, value

pytestmark = pytest.mark.django_db


# -- access --------------------------------------------------------------------------------------------


def test_metrics_do_not_exist_until_a_token_or_a_network_is_configured(client, admin):
    assert client.get("/metrics").status_code == 404
    client.force_login(admin)  # not even for staff: metrics are for machines with a token
    assert client.get("/metrics").status_code == 404


def test_a_missing_or_wrong_token_is_refused_and_the_right_one_reads(client, metrics_token):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"parley_outbox_messages" in response.content


def test_an_allowed_network_reads_without_a_token_and_others_do_not(client, settings):
    settings.METRICS_ALLOW_FROM = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 401  # the test client is 127.0.0.1
    settings.METRICS_ALLOW_FROM = ["127.0.0.0/8", "::1"]
    assert client.get("/metrics").status_code == 200


def test_metrics_answer_get_only(client, metrics_token):
    assert client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


# -- counters -----------------------------------------------------------------------------------------


def post_webhook(client, channel, body: bytes, *, signed: bool):
    headers = {SIGNATURE_HEADER: SimulatorConnector(channel).sign(body)} if signed else {}
    return client.post(f"/hooks/{channel.key}/inbound/", body, content_type="application/json", headers=headers)


def test_webhooks_are_counted_by_channel_kind_and_status_without_showing_the_key(client, sms, metrics_token):
    before = scrape()
    body = b'{"from": "+15005550006", "text": "hello"}'
    assert post_webhook(client, sms, body, signed=True).status_code == 200
    assert post_webhook(client, sms, body, signed=False).status_code == 403
    assert client.post("/hooks/no-such-key/inbound/", body, content_type="application/json").status_code == 404
    counters.flush()
    after = scrape()
    name = "parley_webhooks_received_total"
    assert value(after, name, kind="simulator", status="200") == value(before, name, kind="simulator", status="200") + 1
    assert value(after, name, kind="simulator", status="403") == value(before, name, kind="simulator", status="403") + 1
    assert value(after, name, kind="unknown", status="404") == value(before, name, kind="unknown", status="404") + 1
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert sms.key.encode() not in response.content  # the key is the webhook URL's secret


def test_inbound_events_pending_and_failed_and_the_oldest_age(sms, metrics_token):
    before = scrape()
    old = InboundEvent.objects.create(channel=sms, dedupe_key="a", body=b"{}")
    InboundEvent.objects.create(channel=sms, dedupe_key="b", body=b"{}")
    InboundEvent.objects.create(channel=sms, dedupe_key="c", body=b"{}", status=InboundEvent.Status.FAILED)
    InboundEvent.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(minutes=10))
    after = scrape()
    assert (
        value(after, "parley_inbound_events", state="pending")
        == value(before, "parley_inbound_events", state="pending") + 2
    )
    assert (
        value(after, "parley_inbound_events", state="failed")
        == value(before, "parley_inbound_events", state="failed") + 1
    )
    assert 595 <= value(after, "parley_inbound_oldest_pending_seconds") <= 700


def test_the_outbox_by_state_and_the_oldest_queued_age(sms, alice, metrics_token):
    message = receive_message(channel=sms, inbound=InboundMessage(provider_id="m-1", address="+15005550006", text="hi"))
    queued = outbound.reply(conversation=message.conversation, text="On its way", by=alice)
    failed = outbound.reply(conversation=message.conversation, text="Lost", by=alice)
    Message.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    Message.objects.filter(pk=failed.pk).update(status=Message.Status.FAILED)
    samples = scrape()
    assert value(samples, "parley_outbox_messages", state="queued") == 1
    assert value(samples, "parley_outbox_messages", state="failed") == 1
    assert value(samples, "parley_outbox_messages", state="sending") == 0
    assert 295 <= value(samples, "parley_outbox_oldest_queued_seconds") <= 400


def test_a_delivered_reply_lands_in_the_delivery_time_histogram(sms, alice, metrics_token):
    message = receive_message(channel=sms, inbound=InboundMessage(provider_id="m-2", address="+15005550006", text="hi"))
    reply = outbound.reply(conversation=message.conversation, text="Done", by=alice)
    Message.objects.filter(pk=reply.pk).update(created_at=timezone.now() - timedelta(seconds=3))
    before = scrape()
    assert outbound.deliver_message(message_id=reply.pk).status in {"sent", "delivered"}
    after = scrape()
    name = "parley_delivery_seconds"
    assert value(after, f"{name}_count", kind="simulator") == value(before, f"{name}_count", kind="simulator") + 1
    # 3 s is above the 2.5 s bound and within the 5 s one.
    assert value(after, f"{name}_bucket", kind="simulator", le="2.5") == value(
        before, f"{name}_bucket", kind="simulator", le="2.5"
    )
    assert (
        value(after, f"{name}_bucket", kind="simulator", le="5.0")
        == value(before, f"{name}_bucket", kind="simulator", le="5.0") + 1
    )
    assert value(after, f"{name}_sum", kind="simulator") - value(before, f"{name}_sum", kind="simulator") >= 3


def test_bot_decisions_are_counted_by_action_once_committed(sms, metrics_token, django_capture_on_commit_callbacks):
    message = receive_message(channel=sms, inbound=InboundMessage(provider_id="m-3", address="+15005550006", text="hi"))
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        BotDecision.objects.create(message=message, conversation=message.conversation, action="handoff", reason="asked")
    after = scrape()
    assert (
        value(after, "parley_bot_decisions_total", action="handoff")
        == value(before, "parley_bot_decisions_total", action="handoff") + 1
    )


def test_failed_sign_ins_are_counted(client, alice, metrics_token):
    before = scrape()
    assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    after = scrape()
    assert value(after, "parley_login_failures_total") == value(before, "parley_login_failures_total") + 1


def test_celery_queue_lengths_come_from_the_broker(metrics_token):
    from inbox.tasks import ping

    conf = current_app.conf
    routes = conf.task_routes
    conf.task_routes = {"nothing.routed.here": {"queue": "obs-metrics-probe"}}
    try:
        ping.apply_async(queue="obs-metrics-probe")
        ping.apply_async(queue="obs-metrics-probe")
        assert value(scrape(), "parley_celery_queue_length", queue="obs-metrics-probe") == 2
    finally:
        conf.task_routes = routes
        store.client().delete("obs-metrics-probe")


# The other process writes to the test database (an audit entry, django-axes' attempt): a transactional
# test flushes them afterwards, so no later test meets a stranger's failed sign-in or a lock-out.
@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_counts_from_another_process_add_up(metrics_token):
    """Counters live in Redis: a failed sign-in in another process shows in this one's scrape."""
    before = scrape()
    script = (
        "import django; django.setup(); from django.test import Client;"
        "print(Client().post('/login/', {'username': 'nobody', 'password': 'x'}).status_code)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database_url()}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip().endswith("200"), result.stderr
    assert wait_for(
        lambda: value(scrape(), "parley_login_failures_total") == value(before, "parley_login_failures_total") + 1
    )


@pytest.mark.stack
def test_a_source_that_is_down_is_reported_and_the_rest_still_answers(metrics_token):
    script = (
        "import django; django.setup(); from django.test import Client;"
        f"r = Client().get('/metrics', headers={{'Authorization': 'Bearer {TOKEN}'}});"
        "print(r.status_code); print(r.content.decode())"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "METRICS_TOKEN": TOKEN,
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.startswith("200"), result.stdout + result.stderr
    assert 'parley_metrics_source_up{source="redis"} 0.0' in result.stdout
    assert 'parley_metrics_source_up{source="database"} 1.0' in result.stdout
    assert "parley_outbox_messages" in result.stdout


@pytest.mark.django_db(transaction=True)
async def test_open_websockets_are_counted_and_forgotten_when_closed(alice, metrics_token):
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    def session() -> str:
        c = Client()
        c.force_login(alice)
        return c.cookies["sessionid"].value

    cookie = await database_sync_to_async(session)()
    before = value(await database_sync_to_async(scrape)(), "parley_websocket_connections", kind="operator")
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver"), (b"cookie", f"sessionid={cookie}".encode())]
    communicator = WebsocketCommunicator(application, "/ws/inbox/", headers=headers)
    assert (await communicator.connect())[0]
    try:
        during = value(await database_sync_to_async(scrape)(), "parley_websocket_connections", kind="operator")
        assert during == before + 1
    finally:
        await communicator.disconnect()
    after = value(await database_sync_to_async(scrape)(), "parley_websocket_connections", kind="operator")
    assert after == before
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


def test_per_process_gauges_of_a_process_gone_quiet_are_dropped(metrics_token):
    stale = json.dumps(["websockets", {"kind": "operator"}, "gone-host:1"], separators=(",", ":"))
    store.client().hset(store.key("gauges"), stale, "7 1000.0")  # last refreshed in 1970
    assert value(scrape(), "parley_websocket_connections", kind="operator") < 7
    assert not store.client().hexists(store.key("gauges"), stale)
