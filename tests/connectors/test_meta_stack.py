"""Meta end to end: the Graph API stand-in posts signed, batched callbacks (duplicated, statuses
before the send's answer) to a real Daphne; a real worker processes them and sends replies to the
stand-in."""

from __future__ import annotations

import pytest

from inbox.models import InboundEvent, Message
from inbox.services import outbound
from tests.conftest import wait_for
from tests.fakes.meta import (
    fixture_bytes,
    meta_channel,
    running,
    wa_callback,
    wa_contact,
    wa_message,
    wa_value,
)

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake():
    with running() as server:
        yield server


@pytest.fixture
def line(stack, fake, support):
    channel = meta_channel(
        "whatsapp-cloud", team=support, graph=fake.base_url, public_base_url=stack.base_url, http_timeout="15"
    )
    fake.webhook_url = f"{stack.base_url}/hooks/{channel.key}/webhook/"
    return channel


def test_a_batched_duplicated_callback_is_each_message_once_and_a_forged_one_nothing(fake, line):
    fake.add_media("1479537139650973", b"\xff\xd8\xff-jpeg", "image/jpeg")
    batch = wa_callback(
        wa_value(contacts=[wa_contact()], messages=[wa_message(f"wamid.S{n}", body=f"message {n}") for n in range(5)]),
        wa_value(contacts=[wa_contact()], messages=[wa_message("wamid.S2", body="message 2")]),
    )
    assert fake.post_callback(fake.webhook_url, batch).status_code == 200
    assert fake.post_callback(fake.webhook_url, batch).status_code == 200
    assert fake.post_callback(fake.webhook_url, fixture_bytes("whatsapp_image.json")).status_code == 200
    forged = fake.post_callback(
        fake.webhook_url,
        wa_callback(wa_value(contacts=[wa_contact()], messages=[wa_message("wamid.FORGED", body="x")])),
        signature="sha256=" + "0" * 64,
    )
    assert forged.status_code == 403
    wait_for(
        lambda: (
            Message.objects.filter(direction="in").count() == 6
            and not InboundEvent.objects.filter(status="pending").exists()
        ),
        timeout=30,
    )
    assert sorted(
        Message.objects.filter(direction="in").exclude(provider_id__contains="HBgL").values_list("text", flat=True)
    ) == [f"message {n}" for n in range(5)]
    picture = Message.objects.get(provider_id__contains="HBgL")
    assert picture.attachments.get().size == len(b"\xff\xd8\xff-jpeg")
    assert not InboundEvent.objects.filter(dedupe_key__contains="FORGED").exists()


def test_a_reply_goes_out_once_and_statuses_that_beat_its_answer_still_apply(fake, line, alice):
    fake.callbacks = ["read", "delivered", "sent", "delivered"]
    fake.callbacks_before_answer = True
    fake.post_callback(fake.webhook_url, fixture_bytes("whatsapp_text.json"))
    customer_message = wait_for(lambda: Message.objects.filter(direction="in").first())
    reply = outbound.reply(conversation=customer_message.conversation, text="We are on it", by=alice)
    # A status that beats the send's answer waits for it: the event runs again 2, 4, 6... s later.
    wait_for(lambda: Message.objects.get(pk=reply.pk).status == "read", timeout=60, interval=0.5)
    assert len(fake.sent) == 1
    assert Message.objects.get(pk=reply.pk).provider_id == fake.sent[0]["id"]
    assert fake.callback_results == [200]
    assert fake.read_marks == [customer_message.provider_id]


def test_a_send_whose_answer_is_lost_is_confirmed_by_its_statuses_and_not_sent_again(stack, fake, support, alice):
    # Meta calls back, then does not answer the send within our timeout: "may or may not have gone
    # out" until the statuses, which name our id, say that it did.
    channel = meta_channel(
        "whatsapp-cloud", team=support, graph=fake.base_url, public_base_url=stack.base_url, http_timeout="1"
    )
    fake.webhook_url = f"{stack.base_url}/hooks/{channel.key}/webhook/"
    fake.callbacks = ["sent", "delivered"]
    fake.callbacks_before_answer = True
    fake.post_callback(fake.webhook_url, fixture_bytes("whatsapp_text.json"))
    customer_message = wait_for(lambda: Message.objects.filter(direction="in").first())
    fake.fail_next("timeout")
    reply = outbound.reply(conversation=customer_message.conversation, text="Checking now", by=alice)
    wait_for(lambda: Message.objects.get(pk=reply.pk).status == "delivered", timeout=60, interval=0.5)
    reply.refresh_from_db()
    assert reply.provider_id == fake.sent[0]["id"]
    assert reply.status_reason == ""
    assert len(fake.sent) == 1  # once: nobody was asked to retry it


def test_a_rate_limited_send_is_retried_by_the_worker_until_it_goes_out(fake, line, alice):
    fake.post_callback(fake.webhook_url, fixture_bytes("whatsapp_text.json"))
    customer_message = wait_for(lambda: Message.objects.filter(direction="in").first())
    fake.fail_next("130429", "500")
    reply = outbound.reply(conversation=customer_message.conversation, text="Sorry for the wait", by=alice)
    wait_for(lambda: Message.objects.get(pk=reply.pk).status in ("sent", "delivered"), timeout=60, interval=0.2)
    assert len(fake.sent) == 1
    assert Message.objects.get(pk=reply.pk).attempts == 3
