"""After a fault clears, everything settles within 30 s: an operator's reply while Redis is down, a
worker killed in the middle of a send. Redis is really unreachable (its TCP proxy is cut) and the
worker really killed (SIGKILL); only Twilio is a stand-in."""

from __future__ import annotations

import time

import httpx
import pytest

from inbox.models import Message
from inbox.services import outbound
from tests.conftest import wait_for
from tests.fakes.twilio import fixture, form, running, twilio_channel
from tests.reliability.conftest import kill_worker, operator_session

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

SETTLES_WITHIN = 30.0


@pytest.fixture
def fake():
    with running() as server:
        yield server


@pytest.fixture
def line(healed, fake, support):
    return twilio_channel(
        "twilio-sms", team=support, api_base_url=fake.base_url, public_base_url=healed.base_url, http_timeout="20"
    )


def customer_writes(fake, line) -> Message:
    url = f"{line.settings['public_base_url']}/hooks/{line.key}/inbound/"
    assert fake.send_webhook(url, form(fixture("sms.txt"))).status_code == 200
    return wait_for(lambda: Message.objects.filter(channel=line, direction="in").first(), timeout=15)


def test_a_reply_written_while_redis_is_down_is_stored_queued_and_delivered_when_it_returns(healed, fake, line, alice):
    conversation = customer_writes(fake, line).conversation
    cookies = operator_session(alice)
    healed.redis.cut()
    answer = httpx.post(
        f"{healed.base_url}/c/{conversation.pk}/send/",
        data={"text": "Your new order ships today", "mode": "reply", "channel": str(line.pk)},
        cookies=cookies,
        headers={"X-CSRFToken": cookies["csrftoken"], "HX-Request": "true"},
        timeout=20,
    )
    assert answer.status_code == 200, answer.text[:500]
    reply = Message.objects.get(conversation=conversation, direction="out", text="Your new order ships today")
    assert reply.status == "queued"
    assert "queued" in answer.text.lower()  # the operator sees it queued
    time.sleep(2)
    assert Message.objects.get(pk=reply.pk).status == "queued"
    assert not fake.sent
    healed.redis.restore()
    back = time.monotonic()
    wait_for(lambda: Message.objects.get(pk=reply.pk).status in ("sent", "delivered"), timeout=SETTLES_WITHIN)
    assert time.monotonic() - back < SETTLES_WITHIN
    assert len(fake.sent) == 1


def test_a_reply_whose_worker_was_killed_mid_send_is_settled_once_within_30_s(healed, fake, line, alice):
    conversation = customer_writes(fake, line).conversation
    fake.slow_seconds = 6.0
    fake.fail_next("timeout")  # Twilio accepts the message and answers late: the worker dies meanwhile
    reply = outbound.reply(conversation=conversation, text="On its way", by=alice)
    wait_for(lambda: len(fake.sent) == 1, timeout=15)
    kill_worker(healed)
    healed.start_worker(name="faulty-worker")
    back = time.monotonic()
    settled = wait_for(
        lambda: Message.objects.filter(pk=reply.pk, status__in=("sent", "delivered", "failed")).first(),
        timeout=SETTLES_WITHIN,
        interval=0.2,
    )
    assert time.monotonic() - back < SETTLES_WITHIN
    assert settled.status in ("sent", "delivered")  # Twilio can be asked: no need to fail it
    assert settled.provider_id == fake.sent[0].sid
    assert len(fake.sent) == 1
