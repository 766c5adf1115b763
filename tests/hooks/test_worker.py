"""Webhooks out through the real worker: delivered soon after commit, in order, and retried."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from hooks import services
from hooks.models import Delivery
from inbox.services import conversations
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.conftest import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_the_worker_delivers_each_event_once_in_order_after_commit(stack, sms, alice, receiver):
    subscription, secret = services.create_subscription(
        name="CRM", url=receiver.base_url, events=list(services.EVENT_NAMES), team=None, by=None
    )
    receiver.answers = [502]  # the first attempt fails: everything behind it in that conversation waits
    message = receive_message(
        channel=sms, inbound=InboundMessage(provider_id="w1", address="+15005550006", text="Hi", name="Ann")
    )
    conversations.resolve_conversation(conversation=message.conversation, by=alice)
    # The first retry comes ~10 s later; make it due at once (the sweeper would pick it up as well).
    wait_for(lambda: Delivery.objects.filter(response_code=502).exists())
    Delivery.objects.filter(status="pending").update(next_attempt_at=message.created_at)
    services.enqueue_due()
    wait_for(lambda: not Delivery.objects.filter(subscription=subscription, status="pending").exists(), timeout=30)
    bodies = [Webhook(secret).verify(body, headers) for headers, body, _at in receiver.received]
    delivered = bodies[1:]  # the first request got the 502
    in_conversation = [b["type"] for b in delivered if b["data"].get("conversation_id") == message.conversation_id]
    assert in_conversation == ["conversation.created", "message.created", "conversation.resolved"]
    ids = [headers["webhook-id"] for headers, _b, _t in receiver.received]
    assert len(ids) == Delivery.objects.count() + 1  # every event once; the failed one twice
    assert len(set(ids)) == Delivery.objects.count()
