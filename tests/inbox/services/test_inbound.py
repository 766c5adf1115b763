"""The way in: a customer's message lands once, in their one thread, and reopens what it should."""

from __future__ import annotations

import pytest

from inbox.models import Conversation, Message
from inbox.services import conversations
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage


def inbound(provider_id: str, address: str = "+15005550006", text: str = "Hi") -> InboundMessage:
    return InboundMessage(provider_id=provider_id, address=address, text=text, name="Alice Customer")


def test_sms_and_whatsapp_from_one_number_land_in_one_thread(sms, whatsapp):
    first = receive_message(channel=sms, inbound=inbound("a", "+1 500-555-0006"))
    second = receive_message(channel=whatsapp, inbound=inbound("b", "whatsapp:+15005550006"))
    assert first.customer_id == second.customer_id
    assert first.conversation_id == second.conversation_id
    assert Conversation.objects.count() == 1


def test_the_same_provider_message_twice_is_stored_once(sms):
    one = receive_message(channel=sms, inbound=inbound("dup"))
    two = receive_message(channel=sms, inbound=inbound("dup"))
    assert one.pk == two.pk
    assert Message.objects.filter(kind="message").count() == 1


def test_a_new_customer_message_reopens_a_resolved_conversation(sms, alice):
    message = receive_message(channel=sms, inbound=inbound("a"))
    conversations.resolve_conversation(conversation=message.conversation, by=alice)
    again = receive_message(channel=sms, inbound=inbound("b"))
    assert again.conversation_id == message.conversation_id
    again.conversation.refresh_from_db()
    assert again.conversation.status == Conversation.Status.OPEN
    activity = again.conversation.messages.filter(kind="activity").order_by("created_at", "pk")
    assert list(activity.values_list("text", flat=True)) == ["resolved", "reopened"]


def test_an_automatic_reply_is_recorded_without_reopening_resolved_work(sms, alice):
    message = receive_message(channel=sms, inbound=inbound("a"))
    conversations.resolve_conversation(conversation=message.conversation, by=alice)
    auto = InboundMessage(provider_id="oof", address="+15005550006", text="I am out of office", auto_reply=True)

    stored = receive_message(channel=sms, inbound=auto)

    stored.conversation.refresh_from_db()
    assert stored.conversation_id == message.conversation_id
    assert stored.conversation.status == Conversation.Status.RESOLVED
    assert stored.metadata["auto_reply"] is True


@pytest.mark.django_db(transaction=True)
def test_a_known_customers_message_is_stored_in_one_short_transaction(sms):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    receive_message(channel=sms, inbound=inbound("first"))
    with CaptureQueriesContext(connection) as captured:
        message = receive_message(channel=sms, inbound=inbound("second", text="Any news?"))
    statements = [query["sql"] for query in captured.captured_queries]
    commit = next(n for n, sql in enumerate(statements) if sql.upper().startswith("COMMIT"))
    work = [sql for sql in statements[:commit] if not sql.upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE"))]
    # Find and lock the conversation through the identity, insert the message, update the
    # conversation (RETURNING its version). Hooks and the broadcast run after commit.
    assert len(work) <= 3, "\n".join(work)
    assert len(statements[:commit]) <= 4, "\n".join(statements[:commit])
    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.last_message_preview == "Any news?"
    assert message.conversation.version == conversation.version
    assert Message.objects.filter(conversation=conversation, direction="in").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_delivery_changes_nothing(sms):
    first = receive_message(channel=sms, inbound=inbound("dup-1"))
    conversations.resolve_conversation(conversation=first.conversation, by=None)
    again = receive_message(channel=sms, inbound=inbound("dup-1"))
    assert again.pk == first.pk
    # The duplicate did not reopen the conversation it belongs to.
    assert Conversation.objects.get(pk=first.conversation_id).status == Conversation.Status.RESOLVED
    assert Message.objects.filter(direction="in").count() == 1
