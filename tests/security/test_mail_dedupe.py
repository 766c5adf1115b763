"""Different mail must not vanish as a duplicate; a true redelivery is still one message.

Senders choose Message-IDs, and reuse them: CPython's e-mail test corpus has 48 messages of which
5 vanished as "duplicates" of others with the same Message-ID. The messages here are built the
same way (one Message-ID, different content), not taken from CPython's files.
"""

from __future__ import annotations

import json
import logging
import time
from email.message import EmailMessage

import pytest

from connectors.email import inbound_parse
from connectors.email.imap import Mailbox
from inbox.models import InboundEvent, Message
from inbox.services import channels, inbound
from inbox.transport import InboundMessage
from tests.fakes.dovecot import dovecot  # noqa: F401 - fixture

KEY = "test_mailgun_signing_key"


def mail(mid: str, text: str, *, subject: str = "Order 1001", attachment: bytes | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice Customer <alice@customer.test>"
    message["To"] = "support@example.test"
    message["Subject"] = subject
    message["Date"] = "Sat, 22 Nov 2025 17:40:00 +0000"
    message["Message-ID"] = f"<{mid}>"
    message.set_content(text)
    if attachment is not None:
        message.add_attachment(attachment, maintype="image", subtype="jpeg", filename="photo.jpg")
    return message


def corpus(run: str) -> dict[str, EmailMessage]:
    """Pairs that share a Message-ID but say different things, and one mail of its own."""
    shared, other = f"15090.61304.{run}@aragorn.example.test", f"pics.{run}@customer.test"
    return {
        "first": mail(shared, "The vase arrived broken."),
        "other text": mail(shared, "Please send a replacement."),
        "other subject": mail(shared, "The vase arrived broken.", subject="Re: Order 1001"),
        "photo": mail(other, "Photo attached.", attachment=b"\xff\xd8one"),
        "other photo": mail(other, "Photo attached.", attachment=b"\xff\xd8two"),
        "alone": mail(f"alone.{run}@customer.test", "Thanks!"),
    }


@pytest.fixture
def imap_channel(dovecot, support):  # noqa: F811
    address = dovecot.new_mailbox()
    return channels.create_channel(
        kind="email",
        name="Mailbox",
        team=support,
        channel_settings={**dovecot.channel_settings(address), "smtp_host": "127.0.0.1"},
    )


def process_all(channel) -> None:
    for event in InboundEvent.objects.filter(channel=channel).order_by("pk"):
        inbound.process_inbound_event(event_id=event.pk)
        event.refresh_from_db()
        assert event.status == InboundEvent.Status.PROCESSED, event.error


@pytest.mark.django_db
def test_mail_sharing_a_message_id_is_all_kept_and_a_redelivery_is_one(dovecot, imap_channel, caplog):  # noqa: F811
    address = imap_channel.settings["address"]
    messages = corpus(str(time.time_ns()))
    for message in messages.values():
        dovecot.deliver(message, to=address)
    dovecot.deliver(messages["alone"], to=address)  # the MTA delivered it twice
    relayed = b"Received: from relay.customer.test by mx.example.test; Sat, 22 Nov 2025 17:41:00 +0000\r\n"
    dovecot.deliver(relayed + messages["photo"].as_bytes().replace(b"\n", b"\r\n"), to=address)  # by another hop

    with caplog.at_level(logging.INFO, logger="connectors.email.imap"):
        report = Mailbox(imap_channel).poll()
    process_all(imap_channel)

    assert (report.total, report.stored, report.duplicates) == (8, 6, 2)
    assert "collapsed" in caplog.text
    stored = Message.objects.filter(channel=imap_channel)
    assert sorted(m.text for m in stored) == sorted(
        m.get_body(("plain",)).get_content().strip() for m in messages.values()
    )
    photos = [a.file.read() for m in stored for a in m.attachments.all()]
    assert sorted(photos) == [b"\xff\xd8one", b"\xff\xd8two"]


@pytest.mark.django_db
def test_a_rescan_after_a_uidvalidity_change_still_tells_same_from_different(dovecot, imap_channel):  # noqa: F811
    address = imap_channel.settings["address"]
    first = mail(f"re-{time.time_ns()}@customer.test", "The vase arrived broken.")
    dovecot.deliver(first, to=address)
    Mailbox(imap_channel).poll()

    dovecot.change_uidvalidity(address)
    second = mail(first["Message-ID"].strip("<>"), "A different mail, same Message-ID, a longer text.")
    dovecot.deliver(second, to=address)
    report = Mailbox(imap_channel).poll()

    assert (report.skipped_known, report.stored) == (1, 1)
    assert InboundEvent.objects.filter(channel=imap_channel).count() == 2


# -- inbound-parse webhooks ---------------------------------------------------------------------


@pytest.fixture
def mailbox(support):
    return channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={"address": "support@example.test", "smtp_host": "127.0.0.1", "mailgun_signing_key": KEY},
    )


def route_post(client, channel, text: str, *, mid: str, token: str):
    stamp = str(int(time.time()))
    data = {
        "recipient": "support@example.test",
        "from": "Alice Customer <alice@customer.test>",
        "subject": "Order 1001",
        "body-plain": text,
        "message-headers": json.dumps(
            [["From", "Alice Customer <alice@customer.test>"], ["Subject", "Order 1001"], ["Message-Id", f"<{mid}>"]]
        ),
        "timestamp": stamp,
        "token": token,
        "signature": inbound_parse.signature(KEY, stamp, token),
    }
    response = client.post(f"/hooks/{channel.key}/inbound-parse/", data=data)
    assert response.status_code == 200
    return response


def test_two_mailgun_posts_of_different_mail_under_one_message_id_are_two_messages(client, mailbox):
    route_post(client, mailbox, "The vase arrived broken.", mid="same@customer.test", token="t1")
    route_post(client, mailbox, "Please send a replacement.", mid="same@customer.test", token="t2")
    route_post(client, mailbox, "Please send a replacement.", mid="same@customer.test", token="t3")  # a retry

    process_all(mailbox)

    assert InboundEvent.objects.filter(channel=mailbox).count() == 2
    texts = sorted(Message.objects.filter(channel=mailbox).values_list("text", flat=True))
    assert texts == ["Please send a replacement.", "The vase arrived broken."]


def test_two_postmark_posts_of_different_mail_under_one_message_id_are_two_messages(client, support):
    channel = channels.create_channel(
        kind="email",
        name="Postmark",
        team=support,
        channel_settings={
            "address": "support@example.test",
            "smtp_host": "127.0.0.1",
            "postmark_inbound_auth": "user:secret",
        },
    )

    def post(text: str, postmark_id: str):
        payload = {
            "FromFull": {"Email": "alice@customer.test", "Name": "Alice"},
            "ToFull": [{"Email": "support@example.test", "Name": ""}],
            "Subject": "Order 1001",
            "MessageID": postmark_id,
            "TextBody": text,
            "Headers": [{"Name": "Message-ID", "Value": "<same@customer.test>"}],
        }
        return client.post(
            f"/hooks/{channel.key}/postmark-inbound/",
            data=json.dumps(payload),
            content_type="application/json",
            HTTP_AUTHORIZATION="Basic dXNlcjpzZWNyZXQ=",
        )

    assert post("The vase arrived broken.", "pm-1").status_code == 200
    assert post("Please send a replacement.", "pm-2").status_code == 200
    assert post("Please send a replacement.", "pm-3").status_code == 200  # Postmark retried it

    process_all(channel)

    assert Message.objects.filter(channel=channel).count() == 2


def test_one_mail_polled_and_forwarded_is_still_one_message(client, mailbox, caplog):
    raw = mail("both-ways@customer.test", "The vase arrived broken.").as_bytes()
    inbound.record_inbound_event(channel=mailbox, endpoint="imap", dedupe_key="imap-copy", body=raw)
    route_post(client, mailbox, "The vase arrived broken.\n", mid="both-ways@customer.test", token="tb")

    with caplog.at_level(logging.INFO, logger="inbox.services.inbound"):
        process_all(mailbox)

    assert Message.objects.filter(channel=mailbox).count() == 1
    assert "delivered again, kept once" in caplog.text


# -- the core's rule ------------------------------------------------------------------------------


def test_the_same_provider_id_with_other_content_is_another_message(sms, caplog):
    def receive(text: str, digest: str) -> Message:
        return inbound.receive_message(
            channel=sms,
            inbound=InboundMessage(provider_id="mid-1", address="+15005550006", text=text, content_digest=digest),
        )

    with caplog.at_level(logging.INFO, logger="inbox.services.inbound"):
        first = receive("The vase arrived broken.", "a" * 64)
        second = receive("Please send a replacement.", "b" * 64)
        again = receive("Please send a replacement.", "b" * 64)
        first_again = receive("The vase arrived broken.", "a" * 64)

    assert first.pk != second.pk
    assert (again.pk, first_again.pk) == (second.pk, first.pk)
    assert second.provider_id == "mid-1#" + "b" * 16
    assert Message.objects.filter(channel=sms).count() == 2
    assert "with other content; stored as mid-1#bbbb" in caplog.text
    assert "delivered again, kept once" in caplog.text


def test_a_message_stored_before_digests_existed_still_collapses_its_redelivery(sms):
    old = inbound.receive_message(channel=sms, inbound=InboundMessage(provider_id="mid-2", address="+15005550006"))

    again = inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="mid-2", address="+15005550006", content_digest="c" * 64)
    )

    assert again.pk == old.pk
