"""Twilio SMS/MMS and WhatsApp: inbound, media, status callbacks, sending, errors, opt-outs, window."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import override_settings
from django.utils import timezone

from customers.models import Identity
from inbox.models import Attachment, InboundEvent, Message, OptOut
from inbox.services import conversations, inbound, outbound
from inbox.transport import InboundAttachment
from tests.fakes.twilio import fixture, post_signed, running, twilio_channel

ME1 = "/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages/MM00000000000000000000000000000002/Media/ME00000000000000000000000000000001"
ME2 = "/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages/MM00000000000000000000000000000002/Media/ME00000000000000000000000000000002"


@pytest.fixture
def fake():
    with running() as server:
        yield server


@pytest.fixture
def sms(support, fake):
    return twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url)


@pytest.fixture
def whatsapp(support, fake):
    return twilio_channel("twilio-whatsapp", team=support, api_base_url=fake.base_url, from_number="+14155238886")


def deliver_webhook(client, channel, endpoint, body, capture=None):
    """What the web process and then the worker do with one webhook."""
    response = post_signed(client, channel, endpoint, body)
    assert response.status_code == 200, response.content
    event = InboundEvent.objects.filter(channel=channel).order_by("-pk").first()
    if capture is not None:
        with capture(execute=True):
            inbound.process_inbound_event(event_id=event.pk)
    else:
        inbound.process_inbound_event(event_id=event.pk)
    event.refresh_from_db()
    return event


def test_inbound_sms_becomes_a_message_from_the_phone_number(client, sms):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    message = Message.objects.get(kind="message")
    assert message.text == "Hi, my order #1001 arrived broken"
    assert message.provider_id == "SM00000000000000000000000000000001"
    assert message.address == "+15005550006"
    assert message.customer.identities.get().value == "+15005550006"


def test_the_same_webhook_twice_is_one_event_and_one_message(client, sms):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    assert InboundEvent.objects.count() == 1
    assert Message.objects.filter(kind="message").count() == 1


def test_sms_and_whatsapp_from_one_number_are_one_customer_in_one_thread(client, sms, whatsapp):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    deliver_webhook(client, whatsapp, "inbound", fixture("whatsapp.txt"))
    first, second = Message.objects.filter(kind="message").order_by("pk")
    assert first.customer_id == second.customer_id
    assert first.conversation_id == second.conversation_id
    assert second.text == "Hola, ¿mi pedido? 📦"
    assert second.address == "+15005550006"
    assert second.metadata["twilio"]["WaId"] == "15005550006"
    assert Identity.objects.count() == 1


def test_mms_media_is_downloaded_with_the_accounts_credentials(client, sms, fake):
    fake.add_media(ME1, b"\xff\xd8jpeg-bytes", "image/jpeg")
    fake.add_media(ME2, b"\x89PNGpng-bytes", "image/png")
    body = fixture("mms.txt").replace(
        "https%3A%2F%2Fapi.twilio.com", fake.base_url.replace(":", "%3A").replace("/", "%2F")
    )
    event = deliver_webhook(client, sms, "inbound", body)
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    message = Message.objects.get(kind="message")
    stored = {a.content_type: a.file.read() for a in message.attachments.all()}
    assert stored == {"image/jpeg": b"\xff\xd8jpeg-bytes", "image/png": b"\x89PNGpng-bytes"}
    assert message.metadata["twilio"]["FromCity"] == "SAN FRANCISCO"


def test_media_refused_without_credentials_is_skipped_and_the_text_kept(client, support, fake):
    channel = twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url, auth_token="wrong")
    fake.add_media(ME1, b"jpeg", "image/jpeg")
    body = (
        f"MessageSid=MM1&From=%2B15005550006&To=%2B15555550100&Body=pic&NumMedia=1"
        f"&MediaContentType0=image%2Fjpeg&MediaUrl0={fake.base_url}{ME1}"
    )
    channel.settings["auth_token"] = "wrong"
    post = post_signed(client, channel, "inbound", body)
    assert post.status_code == 200
    event = InboundEvent.objects.get()
    inbound.process_inbound_event(event_id=event.pk)
    message = Message.objects.get()
    assert message.text == "pic"
    assert not message.attachments.exists()
    assert "refused" in message.metadata["skipped_attachments"][0]["reason"]


@override_settings(PARLEY_MAX_ATTACHMENT_BYTES=1000)
def test_media_larger_than_the_cap_is_skipped_and_the_text_kept(client, sms, fake):
    fake.add_media(ME1, b"x" * 5000, "image/jpeg")
    body = (
        f"MessageSid=MM1&From=%2B15005550006&To=%2B15555550100&Body=pic&NumMedia=1"
        f"&MediaContentType0=image%2Fjpeg&MediaUrl0={fake.base_url}{ME1}"
    )
    event = deliver_webhook(client, sms, "inbound", body)
    assert event.status == InboundEvent.Status.PROCESSED
    message = Message.objects.get()
    assert message.text == "pic"
    assert "larger than 1000 bytes" in message.metadata["skipped_attachments"][0]["reason"]


def test_media_of_a_refused_type_is_listed_not_downloaded(client, sms, fake):
    body = (
        "MessageSid=MM1&From=%2B15005550006&To=%2B15555550100&Body=layout&NumMedia=1"
        "&MediaContentType0=application%2Fsmil&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fx"
    )
    deliver_webhook(client, sms, "inbound", body)
    message = Message.objects.get(kind="message")
    assert not Attachment.objects.exists()
    assert message.metadata["twilio"]["skipped_media"][0]["content_type"] == "application/smil"


def test_status_callbacks_out_of_order_never_move_a_status_back(client, sms, alice):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    conversation = Message.objects.get().conversation
    reply = outbound.reply(conversation=conversation, text="On it", by=alice)
    Message.objects.filter(pk=reply.pk).update(status="sent", provider_id="SM00000000000000000000000000000009")
    delivered, sent, _failed = fixture("status.txt").splitlines()
    deliver_webhook(client, sms, "status", delivered)
    deliver_webhook(client, sms, "status", sent)
    deliver_webhook(client, sms, "status", delivered)  # a duplicate
    reply.refresh_from_db()
    assert reply.status == "delivered"
    assert InboundEvent.objects.filter(endpoint="status").count() == 2


def test_undelivered_callback_fails_the_message_with_a_readable_reason(client, sms, alice):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    reply = outbound.reply(conversation=Message.objects.get().conversation, text="On it", by=alice)
    Message.objects.filter(pk=reply.pk).update(status="sent", provider_id="SM0000000000000000000000000000000a")
    deliver_webhook(client, sms, "status", fixture("status.txt").splitlines()[2])
    reply.refresh_from_db()
    assert reply.status == "failed"
    assert "unreachable" in reply.status_reason
    assert "30003" in reply.status_reason


def test_reply_goes_out_through_the_client_with_our_status_callback(client, sms, fake, alice):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    reply = outbound.reply(conversation=Message.objects.get().conversation, text="We are on it", by=alice)
    outcome = outbound.deliver_message(message_id=reply.pk)
    assert outcome.status == "sent"
    [sent] = fake.sent
    assert sent.get("To") == "+15005550006"
    assert sent.get("From") == "+15555550100"
    assert sent.get("Body") == "We are on it"
    assert sent.get("StatusCallback") == f"https://inbox.example.test/hooks/{sms.key}/status/"
    reply.refresh_from_db()
    assert reply.provider_id == sent.sid


def test_a_messaging_service_replaces_the_from_number(client, support, fake, alice):
    channel = twilio_channel(
        "twilio-sms", team=support, api_base_url=fake.base_url, from_number="", messaging_service_sid="MG123"
    )
    deliver_webhook(client, channel, "inbound", fixture("sms.txt"))
    reply = outbound.reply(conversation=Message.objects.get().conversation, text="Hi", by=alice)
    outbound.deliver_message(message_id=reply.pk)
    assert fake.sent[0].get("MessagingServiceSid") == "MG123"
    assert fake.sent[0].get("From") == ""


@pytest.mark.parametrize(
    ("number", "words"),
    [
        ("+15005550001", "not a valid phone number"),
        ("+15005550002", "cannot route"),
        ("+15005550003", "country is not enabled"),
        ("+15005550009", "cannot receive SMS"),
    ],
)
def test_twilio_magic_numbers_fail_permanently_with_a_reason(client, sms, fake, alice, number, words):
    body = fixture("sms.txt").replace("%2B15005550006", number.replace("+", "%2B"))
    deliver_webhook(client, sms, "inbound", body)
    reply = outbound.reply(conversation=Message.objects.get().conversation, text="Hi", by=alice)
    assert outbound.deliver_message(message_id=reply.pk).status == "failed"
    reply.refresh_from_db()
    assert reply.status == "failed"
    assert words in reply.status_reason
    assert not fake.sent


def test_21610_fails_the_message_and_records_the_opt_out(client, sms, fake, alice):
    body = fixture("sms.txt").replace("%2B15005550006", "%2B15005550004")
    deliver_webhook(client, sms, "inbound", body)
    conversation = Message.objects.get().conversation
    reply = outbound.reply(conversation=conversation, text="Hi", by=alice)
    outbound.deliver_message(message_id=reply.pk)
    reply.refresh_from_db()
    assert "STOP" in reply.status_reason
    assert OptOut.objects.filter(channel=sms, customer=conversation.customer).exists()
    assert "opted out" in outbound.reply_refusal(conversation=conversation, channel=sms)


def test_rate_limited_send_is_retried_after_twilios_retry_after(client, sms, fake, alice):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    reply = outbound.reply(conversation=Message.objects.get().conversation, text="Hi", by=alice)
    fake.fail_next("429")
    outcome = outbound.deliver_message(message_id=reply.pk)
    assert outcome.status == "queued"
    assert outcome.retry_in == 1.0
    reply.refresh_from_db()
    assert "rate limiting" in reply.status_reason
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    assert len(fake.sent) == 1


def test_a_send_that_timed_out_but_reached_twilio_is_not_sent_twice(client, support, fake, alice):
    channel = twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url, http_timeout="0.5")
    fake.slow_seconds = 1.5
    deliver_webhook(client, channel, "inbound", fixture("sms.txt"))
    reply = outbound.reply(conversation=Message.objects.get().conversation, text="Only once, please", by=alice)
    fake.fail_next("timeout")
    assert outbound.deliver_message(message_id=reply.pk).status == "queued"
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    reply.refresh_from_db()
    assert len(fake.sent) == 1
    assert reply.provider_id == fake.sent[0].sid


def test_server_errors_are_retried(client, sms, fake, alice):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    reply = outbound.reply(conversation=Message.objects.get().conversation, text="Hi", by=alice)
    fake.fail_next("500")
    outcome = outbound.deliver_message(message_id=reply.pk)
    assert outcome.status == "queued"
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    assert len(fake.sent) == 1


def test_stop_opts_the_customer_out_and_replies_are_refused_until_start(
    client, sms, alice, django_capture_on_commit_callbacks
):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"), django_capture_on_commit_callbacks)
    stop = (
        fixture("sms.txt")
        .replace("SM00000000000000000000000000000001", "SM2")
        .replace("Hi%2C+my+order+%231001+arrived+broken", "Stop")
    )
    deliver_webhook(client, sms, "inbound", stop, django_capture_on_commit_callbacks)
    conversation = Message.objects.filter(kind="message").first().conversation
    assert OptOut.objects.filter(channel=sms, customer=conversation.customer).exists()
    with pytest.raises(conversations.ReplyRefused, match="opted out"):
        outbound.reply(conversation=conversation, text="Are you sure?", by=alice)
    start = stop.replace("SM2", "SM3").replace("Body=Stop", "Body=START")
    deliver_webhook(client, sms, "inbound", start, django_capture_on_commit_callbacks)
    assert not OptOut.objects.exists()
    assert outbound.reply(conversation=conversation, text="Welcome back", by=alice).status == "queued"


def test_stop_inside_a_sentence_is_not_an_opt_out(client, sms, django_capture_on_commit_callbacks):
    body = fixture("sms.txt").replace("Hi%2C+my+order+%231001+arrived+broken", "Please+stop+the+order")
    deliver_webhook(client, sms, "inbound", body, django_capture_on_commit_callbacks)
    assert not OptOut.objects.exists()


def test_whatsapp_reply_goes_to_the_whatsapp_address(client, whatsapp, fake, alice):
    deliver_webhook(client, whatsapp, "inbound", fixture("whatsapp.txt"))
    reply = outbound.reply(conversation=Message.objects.get().conversation, text="¡Claro!", by=alice)
    outbound.deliver_message(message_id=reply.pk)
    assert fake.sent[0].get("To") == "whatsapp:+15005550006"
    assert fake.sent[0].get("From") == "whatsapp:+14155238886"


def test_whatsapp_reply_outside_the_24_hour_window_is_refused_with_the_reason(client, whatsapp, alice):
    deliver_webhook(client, whatsapp, "inbound", fixture("whatsapp.txt"))
    message = Message.objects.get()
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(hours=25))
    with pytest.raises(conversations.ReplyRefused, match="24 hours"):
        outbound.reply(conversation=message.conversation, text="Hello?", by=alice)


def test_sms_from_the_same_customer_does_not_reopen_the_whatsapp_window(client, sms, whatsapp, alice):
    deliver_webhook(client, whatsapp, "inbound", fixture("whatsapp.txt"))
    Message.objects.update(created_at=timezone.now() - timedelta(hours=30))
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    conversation = Message.objects.first().conversation
    assert "24 hours" in outbound.reply_refusal(conversation=conversation, channel=whatsapp)
    assert outbound.reply_refusal(conversation=conversation, channel=sms) == ""


def test_a_template_message_goes_out_as_content_sid_without_body(client, support, fake, alice):
    channel = twilio_channel(
        "twilio-whatsapp",
        team=support,
        api_base_url=fake.base_url,
        template_content_sid="HX0000000000000000000000000000000a",
    )
    deliver_webhook(client, channel, "inbound", fixture("whatsapp.txt"))
    reply = outbound.reply(
        conversation=Message.objects.get().conversation,
        text="(template: follow-up)",
        by=alice,
        metadata={"template": {"variables": {"1": "Alice"}}},
    )
    outbound.deliver_message(message_id=reply.pk)
    [sent] = fake.sent
    assert sent.get("ContentSid") == "HX0000000000000000000000000000000a"
    assert sent.get("ContentVariables") == '{"1": "Alice"}'
    assert sent.get("Body") == ""


def test_outbound_attachments_go_as_signed_public_media_urls(client, sms, fake, alice):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    reply = outbound.reply(
        conversation=Message.objects.get().conversation,
        text="Here is the label",
        by=alice,
        attachments=(
            InboundAttachment(filename="label.pdf", content_type="application/pdf", content=b"%PDF-1.4 label"),
        ),
    )
    outbound.deliver_message(message_id=reply.pk)
    [media_url] = fake.sent[0].params["MediaUrl"]
    assert media_url.startswith(f"https://inbox.example.test/hooks/{sms.key}/media/?a=")
    parts = urlsplit(media_url)
    fetched = client.get(parts.path, parse_qs(parts.query))
    assert fetched.status_code == 200
    assert fetched.content == b"%PDF-1.4 label"
    assert fetched["Content-Type"] == "application/pdf"
    assert client.get(parts.path, {"a": "1:forged"}).status_code == 404


def test_channel_add_prints_inbound_and_status_urls(support):
    import json
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command(
        "channel",
        "add",
        "twilio-sms",
        "--name",
        "Main line",
        "--set",
        "account_sid=AC123",
        "--set",
        "auth_token=secret",
        "--set",
        "from_number=+15555550100",
        "--set",
        "public_base_url=https://support.example.test",
        stdout=out,
    )
    printed = json.loads(out.getvalue())
    key = printed["webhooks"]["inbound"].split("/")[4]
    assert printed["webhooks"] == {
        "inbound": f"https://support.example.test/hooks/{key}/inbound/",
        "status": f"https://support.example.test/hooks/{key}/status/",
    }
    assert printed["settings"]["auth_token"] == "***"


def test_channel_add_refuses_a_twilio_channel_without_credentials(support):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="auth_token"):
        call_command(
            "channel", "add", "twilio-sms", "--name", "x", "--set", "account_sid=AC1", "--set", "from_number=+1555"
        )


def test_help_is_answered_with_the_channels_help_reply_and_stays_in_the_thread(
    client, support, fake, django_capture_on_commit_callbacks
):
    channel = twilio_channel(
        "twilio-whatsapp",
        team=support,
        api_base_url=fake.base_url,
        help_reply="Acme support: reply here any time, or call +1 555 555 0100. Reply STOP to stop.",
    )
    body = fixture("whatsapp.txt").replace("Hola%2C+%C2%BFmi+pedido%3F+%F0%9F%93%A6", "HELP")
    deliver_webhook(client, channel, "inbound", body, django_capture_on_commit_callbacks)
    answer = Message.objects.get(direction="out")
    assert answer.text.startswith("Acme support")
    assert answer.sender == "system"
    assert answer.status == "queued"
    assert Message.objects.get(direction="in").text == "HELP"
    assert not OptOut.objects.exists()


def test_without_a_help_reply_help_is_left_to_twilio_and_the_team(client, sms, django_capture_on_commit_callbacks):
    body = fixture("sms.txt").replace("Hi%2C+my+order+%231001+arrived+broken", "help")
    deliver_webhook(client, sms, "inbound", body, django_capture_on_commit_callbacks)
    assert not Message.objects.filter(direction="out").exists()
    assert Message.objects.get().metadata["opt_keyword"] == "help"


def test_a_picture_alone_that_timed_out_but_reached_twilio_is_not_sent_twice(client, support, fake, alice):
    channel = twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url, http_timeout="0.5")
    fake.slow_seconds = 1.5
    deliver_webhook(client, channel, "inbound", fixture("sms.txt"))
    reply = outbound.reply(
        conversation=Message.objects.get().conversation,
        text="",
        by=alice,
        attachments=(InboundAttachment(filename="label.png", content_type="image/png", content=b"\x89PNG"),),
    )
    fake.fail_next("timeout")
    assert outbound.deliver_message(message_id=reply.pk).status == "queued"
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    assert len(fake.sent) == 1


def test_two_identical_replies_in_a_row_after_timeouts_are_two_messages(client, support, fake, alice):
    channel = twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url, http_timeout="0.5")
    fake.slow_seconds = 1.5
    deliver_webhook(client, channel, "inbound", fixture("sms.txt"))
    conversation = Message.objects.get().conversation
    first = outbound.reply(conversation=conversation, text="Thanks!", by=alice)
    assert outbound.deliver_message(message_id=first.pk).status == "sent"
    second = outbound.reply(conversation=conversation, text="Thanks!", by=alice)
    fake.fail_next("timeout")
    assert outbound.deliver_message(message_id=second.pk).status == "queued"
    assert outbound.deliver_message(message_id=second.pk).status == "sent"
    second.refresh_from_db()
    first.refresh_from_db()
    assert len(fake.sent) == 2
    assert {first.provider_id, second.provider_id} == {m.sid for m in fake.sent}


def test_the_reply_box_of_an_opted_out_customer_says_why_and_offers_their_other_channels(
    client, sms, whatsapp, alice, django_capture_on_commit_callbacks, settings
):
    deliver_webhook(client, whatsapp, "inbound", fixture("whatsapp.txt"))
    stop = fixture("sms.txt").replace("Hi%2C+my+order+%231001+arrived+broken", "STOP")
    deliver_webhook(client, sms, "inbound", stop, django_capture_on_commit_callbacks)
    conversation = Message.objects.filter(kind="message").first().conversation
    client.force_login(alice)
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert "The customer opted out of SMS." in page
    assert f'data-reply-on="{whatsapp.pk}"' in page
    assert f'data-reply-on="{sms.pk}"' not in page
    switched = client.get(f"/c/{conversation.pk}/composer/", {"channel": whatsapp.pk}, HTTP_HX_REQUEST="true")
    assert b"data-refusal" not in switched.content


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("30007", "The carrier filtered the message as spam. (Twilio error 30007)"),
        ("63049", "Meta chose not to deliver this WhatsApp marketing template"),
        ("39999", "Twilio error 39999: Something new"),
    ],
)
def test_a_failed_delivery_shows_twilios_reason_in_words_in_the_thread(client, sms, alice, settings, code, words):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    conversation = Message.objects.get().conversation
    reply = outbound.reply(conversation=conversation, text="On it", by=alice)
    Message.objects.filter(pk=reply.pk).update(status="sent", provider_id="SM0000000000000000000000000000000a")
    failed = (
        fixture("status.txt").splitlines()[2].replace("ErrorCode=30003", f"ErrorCode={code}&ErrorMessage=Something+new")
    )
    deliver_webhook(client, sms, "status", failed)
    client.force_login(alice)
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert words in page


def test_an_operator_attaches_a_file_in_the_reply_box_and_it_goes_out_as_media(client, sms, fake, alice, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    conversation = Message.objects.get().conversation
    client.force_login(alice)
    upload = SimpleUploadedFile("label.pdf", b"%PDF-1.4 label", content_type="application/pdf")
    response = client.post(
        f"/c/{conversation.pk}/send/",
        {"mode": "reply", "channel": sms.pk, "text": "", "attachments": [upload]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200, response.content
    reply = Message.objects.get(direction="out")
    assert reply.attachments.get().filename == "label.pdf"
    assert "label.pdf" in response.content.decode()
    outbound.deliver_message(message_id=reply.pk)
    [media_url] = fake.sent[0].params["MediaUrl"]
    parts = urlsplit(media_url)
    assert client.get(parts.path, parse_qs(parts.query)).content == b"%PDF-1.4 label"
    empty = client.post(f"/c/{conversation.pk}/send/", {"mode": "reply", "channel": sms.pk}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 400
    assert "attach a file" in empty.content.decode()


def test_more_than_5_mb_of_media_fails_with_the_reason_before_reaching_twilio(client, sms, fake, alice):
    deliver_webhook(client, sms, "inbound", fixture("sms.txt"))
    reply = outbound.reply(
        conversation=Message.objects.get().conversation,
        text="Photos",
        by=alice,
        attachments=(
            InboundAttachment(filename="big.jpg", content_type="image/jpeg", content=b"x" * (5 * 1024 * 1024 + 1)),
        ),
    )
    assert outbound.deliver_message(message_id=reply.pk).status == "failed"
    reply.refresh_from_db()
    assert "5 MB" in reply.status_reason
    assert not fake.sent


def test_a_reply_queued_before_the_customer_wrote_stop_is_not_sent_after_it(client, whatsapp, fake, alice):
    deliver_webhook(client, whatsapp, "inbound", fixture("whatsapp.txt"))
    conversation = Message.objects.get().conversation
    reply = outbound.reply(conversation=conversation, text="One more thing", by=alice)
    conversations.opt_out(channel=whatsapp, customer=conversation.customer, reason="STOP")
    assert outbound.deliver_message(message_id=reply.pk).status == "failed"
    reply.refresh_from_db()
    assert "opted out" in reply.status_reason
    assert not fake.sent
