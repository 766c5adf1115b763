"""Webhook replay and misconfiguration: a captured Mailgun signature buys nothing, a missing secret file is a 503."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from connectors.email import inbound_parse
from inbox.models import InboundEvent
from inbox.services import channels
from tests.fakes.twilio import fixture, post_signed, twilio_channel

KEY = "test_mailgun_signing_key"


@pytest.fixture
def mailbox(support):
    return channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={"address": "support@example.test", "smtp_host": "127.0.0.1", "mailgun_signing_key": KEY},
    )


def route_post(text: str, *, message_id: str, timestamp: int, token: str) -> dict:
    stamp = str(timestamp)
    return {
        "recipient": "support@example.test",
        "from": "Alice Customer <alice@customer.test>",
        "subject": "Order 1001",
        "body-plain": text,
        "message-headers": json.dumps([["From", "alice@customer.test"], ["Message-Id", f"<{message_id}>"]]),
        "timestamp": stamp,
        "token": token,
        "signature": inbound_parse.signature(KEY, stamp, token),
    }


def post(client, channel, data):
    return client.post(f"/hooks/{channel.key}/inbound-parse/", data=data)


def test_a_captured_mailgun_signature_cannot_carry_other_mail(client, mailbox):
    now = int(time.time())
    genuine = route_post("Where is my order?", message_id="m1@customer.test", timestamp=now, token="captured")
    forged = [
        route_post(f"Please refund to account {n}", message_id=f"forged-{n}@x.test", timestamp=now, token="captured")
        for n in range(3)
    ]

    assert post(client, mailbox, genuine).status_code == 200
    answers = [post(client, mailbox, data) for data in forged]

    assert [a.status_code for a in answers] == [403, 403, 403]
    assert b"already used" in answers[0].content
    assert InboundEvent.objects.filter(channel=mailbox).count() == 1


def test_a_replayed_signature_is_refused_with_other_attachments_too(client, mailbox):
    now = int(time.time())
    first = route_post("photo attached", message_id="m2@customer.test", timestamp=now, token="tok-att")
    first["attachment-count"] = "1"
    second = dict(first)
    first["attachment-1"] = SimpleUploadedFile("a.jpg", b"\xff\xd8first", content_type="image/jpeg")
    second["attachment-1"] = SimpleUploadedFile("a.jpg", b"\xff\xd8other", content_type="image/jpeg")

    assert post(client, mailbox, first).status_code == 200
    assert post(client, mailbox, second).status_code == 403


def test_mailgun_retrying_the_very_same_post_is_not_lost_nor_stored_twice(client, mailbox):
    data = route_post("Where is my order?", message_id="m3@customer.test", timestamp=int(time.time()), token="t3")

    assert post(client, mailbox, data).status_code == 200
    assert post(client, mailbox, data).status_code == 200

    assert InboundEvent.objects.filter(channel=mailbox).count() == 1


def test_the_same_token_on_another_channel_is_its_own(client, mailbox, support):
    other = channels.create_channel(
        kind="email",
        name="Sales mail",
        team=support,
        channel_settings={"address": "sales@example.test", "smtp_host": "127.0.0.1", "mailgun_signing_key": KEY},
    )
    now = int(time.time())

    assert (
        post(client, mailbox, route_post("a", message_id="a@c.test", timestamp=now, token="shared")).status_code == 200
    )
    assert post(client, other, route_post("b", message_id="b@c.test", timestamp=now, token="shared")).status_code == 200


@pytest.mark.parametrize("offset", [-16 * 60, 16 * 60], ids=["past", "future"])
def test_timestamps_outside_the_window_are_refused(client, mailbox, offset):
    data = route_post("hi", message_id="m4@customer.test", timestamp=int(time.time()) + offset, token="t4")

    response = post(client, mailbox, data)

    assert response.status_code == 403
    assert b"stale timestamp" in response.content
    assert not InboundEvent.objects.exists()


# -- a channel whose secret file is missing ---------------------------------------------------------


def test_a_missing_secret_file_answers_503_with_a_log_line_not_a_500(client, support, tmp_path, caplog):
    missing = tmp_path / "twilio-token"  # never written
    channel = twilio_channel("twilio-sms", team=support)
    channel.settings = {k: v for k, v in channel.settings.items() if k != "auth_token"}
    channel.settings["auth_token_file"] = str(missing)
    channel.save(update_fields=["settings"])

    with caplog.at_level(logging.ERROR, logger="inbox.views.webhooks"):
        response = post_signed(client, channel, "inbound", fixture("sms.txt"), signature="anything")

    assert response.status_code == 503
    assert response.content == b"channel misconfigured\n"
    assert str(missing) not in response.content.decode()
    assert any(
        "auth_token_file" in record.getMessage() and str(missing) in record.getMessage() for record in caplog.records
    )
    assert not InboundEvent.objects.exists()


def test_a_missing_mailgun_key_file_answers_503(client, support, tmp_path):
    channel = channels.create_channel(
        kind="email",
        name="Mail",
        team=support,
        channel_settings={
            "address": "support@example.test",
            "smtp_host": "127.0.0.1",
            "mailgun_signing_key_file": str(tmp_path / "nope"),
        },
    )
    data = route_post("hi", message_id="m5@customer.test", timestamp=int(time.time()), token="t5")

    assert post(client, channel, data).status_code == 503
