"""Threading fallbacks: the subject token, another address of the same customer, a colleague's answer."""

from __future__ import annotations

import pytest

from customers.services import link_identity
from inbox.models import Conversation, InboundEvent, Message
from inbox.services import channels, conversations, inbound, outbound
from inbox.templatetags.inbox_tags import activity_sentence
from inbox.transport import InboundMessage
from tests.fakes.smtp import smtp_peer  # noqa: F401 - fixture


@pytest.fixture
def mailbox(support, smtp_peer):  # noqa: F811
    return channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={"address": "support@example.test", **smtp_peer.settings()},
    )


def ingest(channel, data: bytes) -> Message:
    event, _ = inbound.record_inbound_event(
        channel=channel, endpoint="imap", dedupe_key=f"test:{hash(data)}", body=data, content_type="message/rfc822"
    )
    inbound.process_inbound_event(event_id=event.pk)
    assert InboundEvent.objects.get(pk=event.pk).status == "processed"
    return Message.objects.filter(channel=channel, direction="in").latest("pk")


def first_mail(channel, sender: str = "lea@customer.test", mid: str = "first@customer.test") -> Message:
    return ingest(
        channel,
        f"From: Lea <{sender}>\nTo: support@example.test\nSubject: Order arrived broken\n"
        f"Message-ID: <{mid}>\n\nThe box was crushed.\n".encode(),
    )


def resolved_long_ago(conversation: Conversation) -> None:
    """Resolved beyond the reopen window: only threading can bring a reply back to it."""
    conversations.resolve_conversation(conversation=conversation, by=None)
    Conversation.objects.filter(pk=conversation.pk).update(resolved_at="2020-01-01T00:00:00Z")


def test_our_replies_carry_the_conversation_token_in_the_subject_once(db, mailbox, alice, smtp_peer):  # noqa: F811
    inbound = first_mail(mailbox)
    token = f"[#c{inbound.conversation_id}]"

    outbound.deliver_message(message_id=outbound.reply(conversation=inbound.conversation, text="Sorry!", by=alice).pk)
    ingest(
        mailbox,
        f"From: lea@customer.test\nTo: support@example.test\nSubject: Re: Order arrived broken {token}\n"
        "Message-ID: <second@customer.test>\n\nThanks\n".encode(),
    )
    outbound.deliver_message(message_id=outbound.reply(conversation=inbound.conversation, text="Welcome", by=alice).pk)

    subjects = [m.message["Subject"] for m in smtp_peer.messages]
    assert subjects == [f"Re: Order arrived broken {token}", f"Re: Order arrived broken {token}"]


def test_a_reply_whose_headers_were_stripped_joins_the_conversation_its_subject_names(db, mailbox):
    conversation = first_mail(mailbox).conversation
    resolved_long_ago(conversation)

    answer = ingest(
        mailbox,
        f"From: lea@customer.test\nTo: support@example.test\nSubject: RE: Order arrived broken [#c{conversation.pk}]\n"
        "Message-ID: <stripped@customer.test>\n\nStill broken.\n".encode(),
    )

    assert answer.conversation_id == conversation.pk
    assert Conversation.objects.count() == 1
    conversation.refresh_from_db()
    assert conversation.status == "open"


def test_threading_headers_win_over_a_subject_token(db, mailbox):
    older = first_mail(mailbox, mid="older@customer.test").conversation
    resolved_long_ago(older)
    newer = first_mail(mailbox, mid="newer@customer.test").conversation
    resolved_long_ago(newer)
    assert older.pk != newer.pk

    answer = ingest(
        mailbox,
        f"From: lea@customer.test\nTo: support@example.test\nSubject: Re: [#c{newer.pk}]\n"
        "In-Reply-To: <older@customer.test>\nMessage-ID: <both@customer.test>\n\nAbout the first one\n".encode(),
    )

    assert answer.conversation_id == older.pk


def test_the_same_customer_writing_from_another_of_their_addresses_joins_the_conversation(db, mailbox):
    conversation = first_mail(mailbox).conversation
    link_identity(customer=conversation.customer, kind="email", value="Lea.Work@Office.test")
    resolved_long_ago(conversation)

    answer = ingest(
        mailbox,
        f"From: Lea <lea.work@office.test>\nTo: support+c{conversation.pk}@example.test\nSubject: Re: Order\n"
        "Message-ID: <work@office.test>\n\nFrom my work address\n".encode(),
    )

    assert answer.conversation_id == conversation.pk
    assert answer.address == "lea.work@office.test"
    assert Conversation.objects.count() == 1
    assert "related_conversation" not in answer.metadata


def test_a_colleague_answering_the_reply_address_gets_their_own_thread_linked_both_ways(
    db, mailbox, django_capture_on_commit_callbacks
):
    conversation = first_mail(mailbox).conversation

    with django_capture_on_commit_callbacks(execute=True):
        answer = ingest(
            mailbox,
            f"From: Max Boss <max@customer.test>\nTo: support+c{conversation.pk}@example.test\n"
            "Subject: Re: Order arrived broken\nMessage-ID: <max@customer.test>\n\n"
            "I am Lea's manager: please ship the replacement to our office.\n".encode(),
        )

    assert answer.conversation_id != conversation.pk
    assert answer.customer.display_name == "Max Boss"
    assert answer.conversation.customer_id == answer.customer_id
    assert answer.metadata["related_conversation"] == conversation.pk
    assert not Message.objects.filter(conversation=conversation, customer=answer.customer).exists()
    [note] = Message.objects.filter(conversation=conversation, kind="activity", metadata__action="related_message")
    assert note.metadata["conversation"] == answer.conversation_id
    assert activity_sentence(note) == (
        "Max Boss (max@customer.test) answered this conversation from another address: "
        f"see conversation #{answer.conversation_id}"
    )


def test_a_token_of_a_conversation_this_mailbox_never_wrote_in_links_nothing(db, mailbox, sms):
    inbound.receive_message(
        channel=sms,
        inbound=InboundMessage(provider_id="sms-1", address="+15005550006", text="hi"),
    )
    elsewhere = Conversation.objects.get()

    answer = ingest(
        mailbox,
        f"From: stranger@else.test\nTo: support@example.test\nSubject: hello [#c{elsewhere.pk}]\n"
        "Message-ID: <stranger@else.test>\n\nguessing ids\n".encode(),
    )

    assert answer.conversation_id != elsewhere.pk
    assert "related_conversation" not in answer.metadata
