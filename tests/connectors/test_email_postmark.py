"""Postmark's inbound webhook (through django-anymail): Basic auth, dedupe, and the same reading as IMAP mail."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from inbox.models import InboundEvent, Message
from inbox.services import channels, conversations, inbound

FIXTURE = Path(__file__).parent / "fixtures" / "email" / "postmark_inbound.json"
AUTH = "postmark:inbound-s3cret"


@pytest.fixture
def mailbox(support):
    return channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={"address": "support@example.test", "smtp_host": "127.0.0.1", "postmark_inbound_auth": AUTH},
    )


def payload(**changes) -> dict:
    return {**json.loads(FIXTURE.read_text()), **changes}


def post(client, channel, data: dict, auth: str | None = AUTH):
    headers = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    return client.post(
        f"/hooks/{channel.key}/postmark-inbound/", data=json.dumps(data), content_type="application/json", **headers
    )


def process_all() -> None:
    for event in InboundEvent.objects.all():
        inbound.process_inbound_event(event_id=event.pk)


def test_a_postmark_inbound_post_becomes_a_message_with_its_attachment(client, mailbox):
    response = post(client, mailbox, payload())

    assert response.status_code == 200
    process_all()
    message = Message.objects.get(channel=mailbox)
    assert message.text == "Thanks, the replacement works!"
    assert "we shipped a replacement" in message.metadata["quoted_text"]
    assert message.provider_id == "CAF=reply-2@mail.customer.test"
    assert message.address == "alice@customer.test"
    assert message.customer.display_name == "Alice Customer"
    assert message.metadata["subject"] == "Re: [#1001] Order arrived broken"
    assert message.metadata["email"]["in_reply_to"] == ["ticket-1001.r1@mail.example.test"]
    assert message.metadata.get("auto_reply") is None
    [photo] = message.attachments.all()
    assert (photo.filename, photo.content_type) == ("photo.jpg", "image/jpeg")
    assert photo.file.read() == base64.b64decode("/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAA==")


@pytest.mark.parametrize("auth", [None, "postmark:wrong", "someone:inbound-s3cret"])
def test_a_post_without_the_channels_basic_auth_is_refused_and_not_stored(client, mailbox, auth):
    response = post(client, mailbox, payload(), auth=auth)

    assert response.status_code == 403
    assert not InboundEvent.objects.exists()


def test_a_channel_without_postmark_credentials_refuses_as_misconfigured(client, support):
    channel = channels.create_channel(
        kind="email", name="IMAP only", team=support, channel_settings={"address": "a@example.test", "smtp_host": "h"}
    )

    assert post(client, channel, payload()).status_code == 503
    assert not InboundEvent.objects.exists()


def test_postmark_retrying_the_same_mail_stores_it_once(client, mailbox):
    post(client, mailbox, payload())
    post(client, mailbox, payload(MessageID="another-postmark-uuid"))

    assert InboundEvent.objects.filter(channel=mailbox).count() == 1


def test_the_raw_email_is_preferred_and_an_empty_envelope_sender_marks_it_automatic(client, mailbox):
    raw = (
        "From: Alice <alice@customer.test>\r\nTo: support@example.test\r\nSubject: Out of office\r\n"
        "Message-ID: <oof-7@customer.test>\r\n\r\nI am away until Monday.\r\n"
    )
    data = payload(RawEmail=raw, TextBody="(parsed copy)", Headers=[{"Name": "Return-Path", "Value": "<>"}])

    assert post(client, mailbox, data).status_code == 200
    process_all()

    message = Message.objects.get(channel=mailbox)
    assert message.text == "I am away until Monday."
    assert message.provider_id == "oof-7@customer.test"
    assert message.metadata["auto_reply"] is True
    assert message.metadata["auto_reason"] == "empty envelope sender"


def test_a_reply_address_seen_only_by_postmark_still_threads(client, mailbox):
    first = payload(
        Headers=[{"Name": "Message-ID", "Value": "<p1@customer.test>"}], Attachments=[], StrippedTextReply=""
    )
    post(client, mailbox, first)
    process_all()
    conversation = Message.objects.get(channel=mailbox).conversation
    conversations.resolve_conversation(conversation=conversation, by=None)
    type(conversation).objects.filter(pk=conversation.pk).update(resolved_at="2020-01-01T00:00:00Z")

    # Sent to the reply address in Bcc: only the envelope (OriginalRecipient) names it.
    again = payload(
        ToFull=[{"Email": "support@example.test", "Name": "", "MailboxHash": ""}],
        OriginalRecipient=f"support+c{conversation.pk}@example.test",
        Headers=[{"Name": "Message-ID", "Value": "<p2@customer.test>"}],
        Attachments=[],
        StrippedTextReply="",
        TextBody="One more thing.",
    )
    post(client, mailbox, again)
    process_all()

    assert Message.objects.get(provider_id="p2@customer.test").conversation_id == conversation.pk
