"""Domain events: each is sent once, only after the transaction that made the change commits, never
on rollback; the in-transaction record carries the same event for an outbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from common import events
from customers.services import update_customer
from inbox import signals
from inbox.models import Message
from inbox.services import conversations, outbound
from inbox.services.customers import merge_customers
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage, StatusUpdate


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.recorded: list[str] = []

    def on_event(self, sender: Any, event: str, **kwargs: Any) -> None:
        kwargs.pop("signal")
        self.sent.append((event, kwargs))

    def on_recorded(self, sender: Any, event: str, payload: dict[str, Any], **kwargs: Any) -> None:
        self.recorded.append(event)

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]

    def one(self, name: str) -> dict[str, Any]:
        found = [payload for event, payload in self.sent if event == name]
        assert len(found) == 1, (name, self.sent)
        return found[0]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recording = Recorder()
    for event in signals.EVENTS:
        event.connect(recording.on_event, weak=False)
    events.recorded.connect(recording.on_recorded, weak=False)
    yield recording
    for event in signals.EVENTS:
        event.disconnect(recording.on_event)
    events.recorded.disconnect(recording.on_recorded)


def inbound(provider_id: str, address: str = "+15005550006") -> InboundMessage:
    return InboundMessage(provider_id=provider_id, address=address, text="Hi", name="Alice Customer")


def test_every_event_has_a_stable_unique_dotted_name():
    names = [event.name for event in signals.EVENTS]
    assert names == [
        "message.created",
        "message.status_changed",
        "conversation.created",
        "conversation.assigned",
        "conversation.handed_off",
        "conversation.resolved",
        "conversation.reopened",
        "conversation.snoozed",
        "customer.created",
        "customer.updated",
        "customer.merged",
    ]


def test_a_first_message_sends_customer_conversation_and_message_created_once_after_commit(
    sms, recorder, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        message = receive_message(channel=sms, inbound=inbound("a"))
        assert recorder.sent == []  # nothing before commit
        assert recorder.recorded == ["customer.created", "conversation.created", "message.created"]
    assert recorder.one("customer.created") == {"customer_id": message.customer_id}
    assert recorder.one("conversation.created") == {
        "conversation_id": message.conversation_id,
        "customer_id": message.customer_id,
        "team_id": sms.team_id,
    }
    assert recorder.one("message.created") == {
        "message_id": message.pk,
        "conversation_id": message.conversation_id,
        "customer_id": message.customer_id,
        "kind": "inbound",
    }


def test_nothing_is_sent_when_the_transaction_rolls_back(sms, recorder, django_capture_on_commit_callbacks):
    def receive_then_fail() -> None:
        with transaction.atomic():
            receive_message(channel=sms, inbound=inbound("a"))
            raise RuntimeError("rolled back")

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        receive_then_fail()
    assert callbacks == []
    assert recorder.recorded == ["customer.created", "conversation.created", "message.created"]  # then undone
    assert recorder.sent == []


def test_reply_note_assignment_resolve_and_reopen_each_send_their_event(
    sms, alice, recorder, django_capture_on_commit_callbacks
):
    message = receive_message(channel=sms, inbound=inbound("a"))
    conversation = message.conversation
    with django_capture_on_commit_callbacks(execute=True):
        reply = outbound.reply(conversation=conversation, text="Hello", by=alice)
        note = outbound.add_note(conversation=conversation, text="VIP", by=alice)
        conversations.unassign_conversation(conversation=conversation, by=alice)
        conversations.assign_conversation(conversation=conversation, operator=alice, by=None)
        conversations.resolve_conversation(conversation=conversation, by=alice)
        conversations.resolve_conversation(conversation=conversation, by=alice)  # no change, no event
        conversations.reopen_conversation(conversation=conversation, by=alice)
        assert recorder.sent == []
    assert recorder.names() == [
        # The operator who answers takes it first: the entries a reply causes come before the reply
        # (the website chat shows "Alice joined" above her message, in id order).
        "conversation.assigned",
        "message.created",
        "message.created",
        "conversation.assigned",
        "conversation.assigned",
        "conversation.resolved",
        "conversation.reopened",
    ]
    kinds = [(p["message_id"], p["kind"]) for name, p in recorder.sent if name == "message.created"]
    assert kinds == [(reply.pk, "outbound"), (note.pk, "note")]
    assigned = [p for name, p in recorder.sent if name == "conversation.assigned"]
    assert assigned[1] == {"conversation_id": conversation.pk, "assignee_id": None, "previous_id": alice.pk}
    assert assigned[2] == {"conversation_id": conversation.pk, "assignee_id": alice.pk, "previous_id": None}


def test_an_operator_taking_over_from_the_bot_sends_handed_off(
    sms, alice, recorder, django_capture_on_commit_callbacks
):
    message = receive_message(channel=sms, inbound=inbound("a"))
    conversation = message.conversation
    conversation.handler = conversation.Handler.BOT
    conversation.save(update_fields=["handler"])
    with django_capture_on_commit_callbacks(execute=True):
        outbound.reply(conversation=conversation, text="Hello", by=alice)
    assert recorder.one("conversation.handed_off") == {"conversation_id": conversation.pk, "reason": "taken_over"}


def test_delivery_status_moves_send_status_changed_with_old_and_new(
    sms, alice, recorder, django_capture_on_commit_callbacks
):
    message = receive_message(channel=sms, inbound=inbound("a"))
    reply = outbound.reply(conversation=message.conversation, text="Hi", by=alice)
    Message.objects.filter(pk=reply.pk).update(status="sent", provider_id="p1")
    with django_capture_on_commit_callbacks(execute=True):
        outbound.apply_status_update(channel=sms, update=StatusUpdate(provider_id="p1", status="delivered"))
        outbound.apply_status_update(channel=sms, update=StatusUpdate(provider_id="p1", status="sent"))  # never back
    assert recorder.one("message.status_changed") == {
        "message_id": reply.pk,
        "conversation_id": reply.conversation_id,
        "old": "sent",
        "new": "delivered",
    }


def test_the_worker_sending_a_message_sends_status_changed_once(
    sms, alice, recorder, django_capture_on_commit_callbacks
):
    message = receive_message(channel=sms, inbound=inbound("a"))
    reply = outbound.reply(conversation=message.conversation, text="Hi", by=alice)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = outbound.deliver_message(message_id=reply.pk)
        outbound.deliver_message(message_id=reply.pk)  # a redelivered task changes nothing
    assert outcome.status == "sent"
    assert recorder.one("message.status_changed") == {
        "message_id": reply.pk,
        "conversation_id": reply.conversation_id,
        "old": "queued",
        "new": "sent",
    }


def test_customer_updates_and_merges_send_their_events(sms, recorder, django_capture_on_commit_callbacks):
    first = receive_message(channel=sms, inbound=inbound("a")).customer
    second = receive_message(channel=sms, inbound=inbound("b", "+15005550007")).customer
    with django_capture_on_commit_callbacks(execute=True):
        update_customer(customer=first, language="uk")
        update_customer(customer=first, language="uk")  # unchanged: no event
        merge = merge_customers(source=second, target=first, by=None)
    assert recorder.one("customer.updated") == {"customer_id": first.pk, "fields": ["language"]}
    assert recorder.one("customer.merged") == {"customer_id": first.pk, "source_id": second.pk, "merge_id": merge.pk}
    assert recorder.one("conversation.resolved")["conversation_id"] in {
        c.pk for c in second.conversations.model.objects.filter(customer=first)
    }


def test_a_failing_receiver_never_breaks_the_writer_nor_other_receivers(
    sms, recorder, django_capture_on_commit_callbacks
):
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("a buggy subscriber")

    signals.message_created.connect(broken, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            receive_message(channel=sms, inbound=inbound("a"))
    finally:
        signals.message_created.disconnect(broken)
    assert "message.created" in recorder.names()
