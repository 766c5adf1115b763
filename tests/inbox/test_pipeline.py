"""The whole inbound → realtime → reply → delivery path, with a real worker process and real Redis."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.utils import timezone

from connectors import simulator
from customers.models import Customer
from inbox.models import Conversation, InboundEvent, Message
from inbox.realtime.groups import group_for
from inbox.services import conversations, inbound, outbound
from tests.conftest import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def customer_message(address: str) -> Message | None:
    return Message.objects.filter(address=address, direction="in").select_related("conversation").first()


def test_a_simulated_sms_reaches_the_thread_and_the_team_live(stack, sms):
    async def scenario() -> tuple[int, list[dict]]:
        layer = get_channel_layer()
        listener = await layer.new_channel()
        await layer.group_add(group_for("team", sms.team_id), listener)
        response = await sync_to_async(simulator.customer_says)(
            medium="sms", address="+1 500-555-0006", text="Where is my order?"
        )
        events = [await asyncio.wait_for(layer.receive(listener), 15)]
        return response.status_code, events

    status, events = async_to_sync(scenario)()

    assert status == 200
    message = wait_for(lambda: customer_message("+15005550006"))
    assert message.text == "Where is my order?"
    assert message.conversation.team_id == sms.team_id
    # One event carries the new message and the conversation's change (inbox.realtime.publish.batched).
    (event,) = events
    assert event["type"] == "inbox.message"
    assert event["conversation_id"] == message.conversation_id
    assert event["changed"] is True
    assert [entry["id"] for entry in event["messages"]][:1] == [message.pk]


def test_an_operator_reply_is_delivered_and_acknowledged(stack, sms, alice):
    simulator.customer_says(medium="sms", address="+15005550006", text="Hi")
    message = wait_for(lambda: customer_message("+15005550006"))

    reply = outbound.reply(conversation=message.conversation, text="Hello Alice", by=alice)

    wait_for(lambda: Message.objects.get(pk=reply.pk).status == "delivered")
    sent = simulator.outbox(to="+15005550006")
    assert [row["text"] for row in sent] == ["Hello Alice"]


def test_the_same_webhook_delivered_twice_gives_one_message(stack, sms):
    body = json.dumps({"id": "provider-1", "from": "+15005550006", "text": "once"}).encode()
    first = simulator.post(sms, "inbound", body)
    second = simulator.post(sms, "inbound", body)

    assert first.status_code == second.status_code == 200
    wait_for(lambda: customer_message("+15005550006"))
    assert InboundEvent.objects.count() == 1
    assert Message.objects.filter(direction="in").count() == 1


def test_racing_events_for_a_new_customer_give_one_customer_and_one_conversation(stack, sms, whatsapp):
    # Different provider messages from one new number, posted at once on two channels.
    def post(channel, n):
        body = json.dumps({"id": f"race-{n}", "from": "+15005550077", "text": f"m{n}"}).encode()
        try:
            simulator.post(channel, "inbound", body)
        finally:
            connection.close()  # give the thread's connection back (to the pool, on PostgreSQL)

    threads = [threading.Thread(target=post, args=(sms if n % 2 else whatsapp, n)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    wait_for(lambda: Message.objects.filter(direction="in").count() == 6)
    assert Customer.objects.count() == 1
    assert Conversation.objects.count() == 1


def test_a_flaky_network_ends_in_exactly_one_delivered_message(stack, sms, alice):
    simulator.customer_says(medium="email", address="flaky@customer.test", text="Hi")
    message = wait_for(lambda: customer_message("flaky@customer.test"), timeout=20)

    reply = outbound.reply(conversation=message.conversation, text="Are you there?", by=alice)

    delivered = wait_for(lambda: Message.objects.filter(pk=reply.pk, status="delivered").first(), timeout=30)
    assert delivered.attempts == 3
    assert len(simulator.outbox(to="flaky@customer.test")) == 1


def test_a_permanent_failure_is_visible_with_its_reason(stack, sms, alice):
    simulator.customer_says(medium="sms", address="+15005550001", text="Hi")
    message = wait_for(lambda: customer_message("+15005550001"))

    reply = outbound.reply(conversation=message.conversation, text="Hello", by=alice)

    failed = wait_for(lambda: Message.objects.filter(pk=reply.pk, status="failed").first())
    assert "refused" in failed.status_reason
    assert message.conversation.messages.filter(kind="activity", text="delivery_failed").exists()


def test_the_sweeper_delivers_a_message_whose_task_was_lost(stack, sms, alice):
    simulator.customer_says(medium="sms", address="+15005550006", text="Hi")
    message = wait_for(lambda: customer_message("+15005550006"))
    # A queued row whose task never reached the broker.
    lost = Message.objects.create(
        conversation=message.conversation,
        customer=message.customer,
        channel=sms,
        direction="out",
        sender="operator",
        author=alice,
        text="lost",
        address="+15005550006",
        status="queued",
        status_changed_at=timezone.now() - timedelta(minutes=5),
        created_at=timezone.now(),
    )

    assert outbound.sweep_outbox() == [lost.pk]

    wait_for(lambda: Message.objects.get(pk=lost.pk).status == "delivered")


def test_a_reply_to_an_opted_out_customer_is_refused(sms, alice):
    message = inbound.receive_message(
        channel=sms,
        inbound=simulator.InboundMessage(provider_id="x", address="+15005550006", text="STOP"),
    )
    conversations.opt_out(channel=sms, customer=message.customer)

    with pytest.raises(conversations.ReplyRefused, match="opted out"):
        outbound.reply(conversation=message.conversation, text="Hi", by=alice)
