"""Send later with real processes: the scheduler's task, run by real Celery workers (one more
started mid-way, as after a restart), sends a scheduled reply once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from connectors import simulator
from inbox import tasks
from inbox.models import Message
from inbox.services import outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.conftest import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_a_scheduled_reply_is_sent_once_by_the_scheduler_across_workers(stack, sms, alice):
    conversation = receive_message(
        channel=sms, inbound=InboundMessage(provider_id="s-1", address="+15005550141", text="Call me back tomorrow")
    ).conversation
    reply = outbound.reply(
        conversation=conversation,
        text="Good morning, as promised.",
        by=alice,
        send_at=timezone.now() + timedelta(hours=1),
    )
    assert simulator.outbox(to="+15005550141") == []  # waiting: not sent
    tasks.release_scheduled.delay()
    assert Message.objects.get(pk=reply.pk).status == Message.Status.SCHEDULED  # not due: stays

    # It falls due; the scheduler's runs reach the worker, a second worker comes up (a restart).
    Message.objects.filter(pk=reply.pk).update(send_at=timezone.now() - timedelta(seconds=1))
    tasks.release_scheduled.delay()
    stack.start_worker(name="worker-after-restart")
    second = stack.processes[-1]
    try:
        for _ in range(3):
            tasks.release_scheduled.delay()
        wait_for(lambda: Message.objects.get(pk=reply.pk).status in {Message.Status.SENT, Message.Status.DELIVERED})
        for _ in range(2):
            tasks.release_scheduled.delay()
        sent = Message.objects.get(pk=reply.pk)
        assert sent.attempts == 1
        assert sent.provider_id == f"sim-{sent.public_id}"
        assert [m["text"] for m in simulator.outbox(to="+15005550141")] == ["Good morning, as promised."]
    finally:
        stack.stop_processes([second])
