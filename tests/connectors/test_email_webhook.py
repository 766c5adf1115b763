"""Mailgun's inbound-parse webhook: signature, replay protection, and the same thread as IMAP mail."""

from __future__ import annotations

import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from connectors.email import inbound_parse
from inbox.models import InboundEvent, Message
from inbox.services import channels, inbound

KEY = "test_mailgun_signing_key"


@pytest.fixture
def mailbox(support):
    return channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={"address": "support@example.test", "smtp_host": "127.0.0.1", "mailgun_signing_key": KEY},
    )


def signed(fields: dict, *, timestamp: int | None = None, token: str = "tok-1") -> dict:  # noqa: S107
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    return {**fields, "timestamp": stamp, "token": token, "signature": inbound_parse.signature(KEY, stamp, token)}


ROUTE_FIELDS = {
    "recipient": "support@example.test",
    "sender": "alice@customer.test",
    "from": "Alice Customer <alice@customer.test>",
    "subject": "Re: [#1001] Order arrived broken",
    "body-plain": "Thanks, the replacement works!\n\nOn Sat, 22 Nov 2025, Acme Support wrote:\n> old",
    "stripped-text": "Thanks, the replacement works!",
    "body-html": "<div>Thanks, the replacement works!</div>",
    "message-headers": json.dumps(
        [
            ["From", "Alice Customer <alice@customer.test>"],
            ["To", "support@example.test"],
            ["Subject", "Re: [#1001] Order arrived broken"],
            ["Message-Id", "<CAF=reply-2@mail.customer.test>"],
            ["In-Reply-To", "<ticket-1001.r1@mail.example.test>"],
        ]
    ),
    "attachment-count": "1",
}


def post(client, channel, data):
    return client.post(f"/hooks/{channel.key}/inbound-parse/", data=data)


def test_the_documented_signature_vector_matches():
    assert (
        inbound_parse.signature(KEY, "1763800000", "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071829")
        == "f5b535dfc2197e79e4340f722f4d0cd116445ccc77f5b40d36710f730048d1bc"
    )


def test_a_signed_route_post_becomes_a_message_with_its_attachment(client, mailbox):
    data = signed(ROUTE_FIELDS)
    data["attachment-1"] = SimpleUploadedFile("photo.jpg", b"\xff\xd8\xff\xe0jpeg", content_type="image/jpeg")

    response = post(client, mailbox, data)

    assert response.status_code == 200
    event = InboundEvent.objects.get(channel=mailbox)
    inbound.process_inbound_event(event_id=event.pk)
    message = Message.objects.get(channel=mailbox)
    assert message.text == "Thanks, the replacement works!"
    assert message.provider_id == "CAF=reply-2@mail.customer.test"
    assert message.address == "alice@customer.test"
    [photo] = message.attachments.all()
    assert (photo.filename, photo.content_type, photo.file.read()) == (
        "photo.jpg",
        "image/jpeg",
        b"\xff\xd8\xff\xe0jpeg",
    )


def test_the_same_mail_posted_twice_is_stored_once(client, mailbox):
    post(client, mailbox, signed(ROUTE_FIELDS, token="tok-a"))
    post(client, mailbox, signed(ROUTE_FIELDS, token="tok-b"))  # Mailgun retried with a new token

    assert InboundEvent.objects.filter(channel=mailbox).count() == 1


def test_a_raw_mime_route_is_read_like_imap_mail(client, mailbox):
    mime = (
        "From: bo@customer.test\r\nTo: support@example.test\r\nSubject: hi\r\nMessage-ID: <m1@c>\r\n\r\nHello there\r\n"
    )

    post(client, mailbox, signed({"recipient": "support@example.test", "body-mime": mime}))

    inbound.process_inbound_event(event_id=InboundEvent.objects.get().pk)
    assert Message.objects.get().text == "Hello there"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"signature": "0" * 64}, 403),
        ({"timestamp": "1763800000"}, 403),  # valid vector, but a day-old replay
        ({"signature": ""}, 403),
    ],
)
def test_forged_or_stale_posts_are_refused(client, mailbox, change, status):
    data = signed(ROUTE_FIELDS)
    if "timestamp" in change:
        data = signed(ROUTE_FIELDS, timestamp=int(change["timestamp"]))
    else:
        data.update(change)

    response = post(client, mailbox, data)

    assert response.status_code == status
    assert not InboundEvent.objects.exists()


def test_a_channel_without_a_signing_key_refuses_webhooks_as_misconfigured(client, support):
    channel = channels.create_channel(
        kind="email", name="IMAP only", team=support, channel_settings={"address": "a@example.test", "smtp_host": "h"}
    )

    assert post(client, channel, signed(ROUTE_FIELDS)).status_code == 503


def test_channel_add_email_prints_the_inbound_parse_url_and_hides_secrets(db):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command(
        "channel",
        "add",
        "email",
        "--name",
        "Support mail",
        "--set",
        "address=support@example.test",
        "--set",
        "smtp_host=smtp.example.test",
        "--set",
        "imap_password=hunter2",
        "--set",
        "mailgun_signing_key=k",
        "--set",
        "postmark_inbound_auth=postmark:s3cret",
        stdout=out,
    )

    described = json.loads(out.getvalue())
    assert described["medium"] == "email"
    assert described["settings"]["imap_password"] == "***"
    assert described["settings"]["mailgun_signing_key"] == "***"
    assert described["webhooks"]["inbound-parse"].endswith("/inbound-parse/")
    assert described["webhooks"]["postmark-inbound"].endswith("/postmark-inbound/")
    assert described["settings"]["postmark_inbound_auth"] == "***"
