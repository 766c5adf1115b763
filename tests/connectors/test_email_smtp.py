"""Sending over SMTP to a real SMTP peer: headers, threading, alternatives, attachments, error mapping."""

from __future__ import annotations

import pytest

from inbox.models import Conversation, InboundEvent, Message
from inbox.services import channels, conversations, inbound, outbound
from inbox.transport import InboundAttachment
from tests.fakes.smtp import smtp_peer  # noqa: F401 - fixture

CUSTOMER_MAIL = (
    b"From: Alice Customer <alice@customer.test>\n"
    b"To: support@example.test\n"
    b"Subject: Order arrived broken\n"
    b"Message-ID: <first@customer.test>\n"
    b"References: <older@customer.test>\n\n"
    b"The box was crushed.\n"
)


@pytest.fixture
def mailbox(support, smtp_peer):  # noqa: F811
    return channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={"address": "support@example.test", **smtp_peer.settings()},
    )


def customer_writes(channel, raw: bytes = CUSTOMER_MAIL) -> Message:
    event, _ = inbound.record_inbound_event(
        channel=channel, endpoint="imap", dedupe_key=str(hash(raw)), body=raw, content_type="message/rfc822"
    )
    inbound.process_inbound_event(event_id=event.pk)
    assert InboundEvent.objects.get(pk=event.pk).status == "processed"
    return Message.objects.filter(channel=channel, direction="in").latest("pk")


def send(message: Message) -> Message:
    outbound.deliver_message(message_id=message.pk)
    message.refresh_from_db()
    return message


def test_an_operator_reply_is_threaded_and_signed_with_their_name(db, mailbox, alice, smtp_peer):  # noqa: F811
    inbound = customer_writes(mailbox)
    reply = outbound.reply(conversation=inbound.conversation, text="Sorry! A new one ships today.", by=alice)

    sent = send(reply)

    [received] = smtp_peer.messages
    mail = received.message
    assert sent.status == "sent"
    assert mail["Message-ID"] == f"<{sent.provider_id}>"
    assert sent.provider_id == f"{reply.public_id.hex}@example.test"
    assert mail["In-Reply-To"] == "<first@customer.test>"
    assert mail["References"] == "<older@customer.test> <first@customer.test>"
    assert mail["Subject"] == f"Re: Order arrived broken [#c{inbound.conversation_id}]"
    [sender] = mail["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Alice (Acme Support)", "support@example.test")
    assert str(mail["Reply-To"]) == f"Acme Support <support+c{inbound.conversation_id}@example.test>"
    assert mail["To"] == "alice@customer.test"
    assert mail["Date"]
    assert "Auto-Submitted" not in mail
    assert received.mail_from == f"support+b{reply.public_id.hex}@example.test"  # VERP for bounces
    assert received.rcpt_tos == ["alice@customer.test"]
    assert mail.get_body(("plain",)).get_content().strip() == "Sorry! A new one ships today."
    assert "<p>Sorry! A new one ships today.</p>" in mail.get_body(("html",)).get_content()


def test_the_customers_answer_to_our_reply_lands_in_the_same_conversation(db, mailbox, alice, smtp_peer):  # noqa: F811
    inbound = customer_writes(mailbox)
    reply = send(outbound.reply(conversation=inbound.conversation, text="Which order?", by=alice))
    conversations.resolve_conversation(conversation=inbound.conversation, by=alice)
    Conversation.objects.filter(pk=inbound.conversation_id).update(resolved_at="2020-01-01T00:00:00Z")

    answer = customer_writes(
        mailbox,
        b"From: alice@customer.test\nTo: support@example.test\nSubject: Re: Order arrived broken\n"
        b"Message-ID: <second@customer.test>\n" + f"In-Reply-To: <{reply.provider_id}>\n\nOrder 1001.\n".encode(),
    )

    assert answer.conversation_id == inbound.conversation_id
    assert Conversation.objects.count() == 1


def test_bot_mail_says_it_is_automatic(db, mailbox, smtp_peer):  # noqa: F811
    inbound = customer_writes(mailbox)

    send(outbound.reply(conversation=inbound.conversation, text="We are on it.", by=None, sender="bot"))

    mail = smtp_peer.messages[0].message
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert str(mail["From"]) == "Acme Support <support@example.test>"


def test_attachments_go_out_as_mime_parts(db, mailbox, alice, smtp_peer):  # noqa: F811
    inbound = customer_writes(mailbox)
    reply = outbound.reply(
        conversation=inbound.conversation,
        text="The label is attached.",
        by=alice,
        attachments=(InboundAttachment(filename="label.pdf", content_type="application/pdf", content=b"%PDF-1.4"),),
    )

    send(reply)

    [part] = list(smtp_peer.messages[0].message.iter_attachments())
    assert (part.get_filename(), part.get_content_type(), part.get_content()) == (
        "label.pdf",
        "application/pdf",
        b"%PDF-1.4",
    )


def test_a_4xx_answer_is_retried_and_a_5xx_answer_fails_with_the_servers_words(db, mailbox, alice, smtp_peer):  # noqa: F811
    inbound = customer_writes(mailbox)
    smtp_peer.reply_with("451 4.3.0 Mail server temporarily rejected message")
    first = send(outbound.reply(conversation=inbound.conversation, text="one", by=alice))
    smtp_peer.reply_with("550 5.1.1 No such user here")
    second = send(outbound.reply(conversation=inbound.conversation, text="two", by=alice))

    assert first.status == "queued"
    assert "451" in first.status_reason
    assert "temporarily" in first.status_reason
    assert second.status == "failed"
    assert "550 5.1.1 No such user here" in second.status_reason


def test_an_unreachable_mail_server_is_a_transient_failure(db, support, alice):
    channel = channels.create_channel(
        kind="email",
        name="Down",
        team=support,
        channel_settings={
            "address": "support@example.test",
            "smtp_host": "127.0.0.1",
            "smtp_port": "1",
            "smtp_tls": "none",
        },
    )
    inbound = customer_writes(channel)

    message = send(outbound.reply(conversation=inbound.conversation, text="hello", by=alice))

    assert message.status == "queued"
    assert "Could not reach the mail server" in message.status_reason


def test_channel_settings_are_checked_when_the_channel_is_added(db):
    from inbox.transport import ConfigurationError

    with pytest.raises(ConfigurationError, match="smtp_host"):
        channels.create_channel(kind="email", name="x", channel_settings={"address": "a@b.test"})
    with pytest.raises(ConfigurationError, match="imap_tls"):
        channels.create_channel(
            kind="email", name="x", channel_settings={"address": "a@b.test", "smtp_host": "h", "imap_tls": "tls"}
        )
    with pytest.raises(ConfigurationError, match="processed"):
        channels.create_channel(
            kind="email", name="x", channel_settings={"address": "a@b.test", "smtp_host": "h", "processed": "delete"}
        )
