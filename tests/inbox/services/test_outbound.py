"""The way out: replies go on the right channel, notes never leave, delivery status only moves forward."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from inbox.models import Message
from inbox.services import outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage, StatusUpdate


def inbound(provider_id: str, address: str = "+15005550006", text: str = "Hi") -> InboundMessage:
    return InboundMessage(provider_id=provider_id, address=address, text=text, name="Alice Customer")


def test_reply_goes_out_on_the_channel_the_customer_last_used(sms, whatsapp, alice):
    receive_message(channel=sms, inbound=inbound("a"))
    last = receive_message(channel=whatsapp, inbound=inbound("b"))
    reply = outbound.reply(conversation=last.conversation, text="Hello", by=alice)
    assert reply.channel == whatsapp
    assert reply.status == Message.Status.QUEUED
    assert reply.address == "+15005550006"


def test_operator_may_pick_another_channel_of_the_customer(sms, whatsapp, alice):
    receive_message(channel=sms, inbound=inbound("a"))
    last = receive_message(channel=whatsapp, inbound=inbound("b"))
    reply = outbound.reply(conversation=last.conversation, text="Hello", by=alice, channel=sms)
    assert reply.channel == sms


def test_a_note_is_never_queued_for_delivery(sms, alice):
    message = receive_message(channel=sms, inbound=inbound("a"))
    note = outbound.add_note(conversation=message.conversation, text="VIP, be nice", by=alice)
    assert note.kind == Message.Kind.NOTE
    assert note.channel is None
    assert note.status == ""


def test_operator_of_another_team_cannot_reply(sms, bob):
    message = receive_message(channel=sms, inbound=inbound("a"))
    with pytest.raises(PermissionDenied):
        outbound.reply(conversation=message.conversation, text="Hi", by=bob)


def test_delivery_status_never_moves_back(sms, alice):
    message = receive_message(channel=sms, inbound=inbound("a"))
    reply = outbound.reply(conversation=message.conversation, text="Hi", by=alice)
    Message.objects.filter(pk=reply.pk).update(status="sent", provider_id="p1")
    assert outbound.apply_status_update(channel=sms, update=StatusUpdate(provider_id="p1", status="delivered"))
    assert not outbound.apply_status_update(channel=sms, update=StatusUpdate(provider_id="p1", status="sent"))
    reply.refresh_from_db()
    assert reply.status == "delivered"
