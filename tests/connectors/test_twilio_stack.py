"""Twilio end to end: the stand-in posts signed webhooks to a real Daphne, a real worker sends
through the official client to the stand-in, and status callbacks come back over HTTP."""

from __future__ import annotations

import pytest

from inbox.models import InboundEvent, Message, OptOut
from inbox.services import conversations, outbound
from tests.conftest import wait_for
from tests.fakes.twilio import fixture, form, running, twilio_channel

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake():
    with running() as server:
        yield server


@pytest.fixture
def line(stack, fake, support):
    return twilio_channel(
        "twilio-sms", team=support, api_base_url=fake.base_url, public_base_url=stack.base_url, http_timeout="1"
    )


def inbound(fake, line, body: str):
    return fake.send_webhook(f"{line.settings['public_base_url']}/hooks/{line.key}/inbound/", form(body))


def customer_text(provider_id: str) -> Message | None:
    return Message.objects.filter(provider_id=provider_id, direction="in").select_related("conversation").first()


def test_a_duplicated_inbound_sms_is_one_message_and_a_forged_one_is_nothing(fake, line):
    sms = fixture("sms.txt")
    assert inbound(fake, line, sms).text.endswith("<Response/>")
    assert inbound(fake, line, sms).status_code == 200
    forged = fake.send_webhook(
        f"{line.settings['public_base_url']}/hooks/{line.key}/inbound/",
        form(sms.replace("SM00000000000000000000000000000001", "SM666")),
        signature="Zm9yZ2VkIQ==",
    )
    assert forged.status_code == 403
    wait_for(lambda: customer_text("SM00000000000000000000000000000001"))
    assert Message.objects.filter(direction="in").count() == 1
    assert not InboundEvent.objects.filter(dedupe_key__contains="SM666").exists()


def test_reply_is_delivered_once_despite_out_of_order_and_duplicate_callbacks(fake, line, alice):
    fake.callbacks = ["delivered", "sent", "delivered", "queued"]
    inbound(fake, line, fixture("sms.txt"))
    message = wait_for(lambda: customer_text("SM00000000000000000000000000000001"))
    reply = outbound.reply(conversation=message.conversation, text="We will send a new one", by=alice)
    wait_for(lambda: len(fake.callback_results) == 4, timeout=30)
    wait_for(lambda: Message.objects.get(pk=reply.pk).status == "delivered", timeout=30)
    assert len(fake.sent) == 1
    assert Message.objects.get(pk=reply.pk).provider_id == fake.sent[0].sid
    assert {code for _status, code in fake.callback_results} == {200}


def test_a_flaky_twilio_ends_in_exactly_one_delivered_message(fake, line, alice):
    fake.slow_seconds = 2.0
    inbound(fake, line, fixture("sms.txt"))
    message = wait_for(lambda: customer_text("SM00000000000000000000000000000001"))
    fake.fail_next("500", "429", "timeout")
    reply = outbound.reply(conversation=message.conversation, text="Sorry for the trouble", by=alice)
    wait_for(lambda: Message.objects.get(pk=reply.pk).status == "delivered", timeout=90, interval=0.2)
    assert len(fake.sent) == 1
    posts = [path for method, path in fake.requests if method == "POST" and path.endswith("/Messages.json")]
    assert len(posts) == 3  # 500, 429, and the one that timed out but went through
    reply.refresh_from_db()
    assert reply.provider_id == fake.sent[0].sid
    assert reply.attempts == 4


def test_a_number_twilio_refuses_is_a_visible_failure(fake, line, alice):
    inbound(fake, line, fixture("sms.txt").replace("%2B15005550006", "%2B15005550001"))
    message = wait_for(lambda: customer_text("SM00000000000000000000000000000001"))
    reply = outbound.reply(conversation=message.conversation, text="Hello?", by=alice)
    failed = wait_for(lambda: Message.objects.filter(pk=reply.pk, status="failed").first(), timeout=30)
    assert "not a valid phone number" in failed.status_reason
    assert Message.objects.filter(kind="activity", metadata__action="delivery_failed").exists()
    assert not fake.sent


def test_stop_through_the_real_worker_opts_the_customer_out(fake, line, alice):
    inbound(fake, line, fixture("sms.txt").replace("Hi%2C+my+order+%231001+arrived+broken", "STOP"))
    message = wait_for(lambda: customer_text("SM00000000000000000000000000000001"))
    wait_for(lambda: OptOut.objects.filter(channel=line, customer=message.customer).exists())
    with pytest.raises(conversations.ReplyRefused, match="opted out"):
        outbound.reply(conversation=message.conversation, text="Bye?", by=alice)


def test_a_call_over_http_walks_the_twiml_flow_and_lands_in_the_thread(fake, stack, support, alice):
    from connectors.twilio.simulate import CallScript, walk_call
    from tests.fakes.twilio import http_poster

    phone = twilio_channel("twilio-voice", team=support, public_base_url=stack.base_url)
    base = f"{stack.base_url}/hooks/{phone.key}"
    log = walk_call(
        post=http_poster(fake),
        voice_url=f"{base}/voice/",
        status_url=f"{base}/status/",
        script=CallScript(says=["I want to talk to a person"], voicemail="Call me back please"),
        account_sid=fake.account_sid,
    )
    assert ("beep", "") in log.lines
    call = wait_for(lambda: Message.objects.filter(kind="call", metadata__call__status="completed").first())
    assert call.metadata["call"]["transcript"] == "Call me back please"
    assert InboundEvent.objects.filter(channel=phone).count() == len(log.requests)


def test_a_whatsapp_template_outside_the_window_is_delivered_and_its_callbacks_apply(fake, stack, support, alice):
    from datetime import timedelta

    from django.utils import timezone

    fake.contents = {"HX00000000000000000000000000000001": "Your order {{1}} has shipped."}
    fake.callbacks = ["delivered", "sent", "read"]
    line = twilio_channel(
        "twilio-whatsapp",
        team=support,
        api_base_url=fake.base_url,
        public_base_url=stack.base_url,
        templates='[{"content_sid": "HX00000000000000000000000000000001", "name": "Order update", "body": "Your order {{1}} has shipped."}]',
    )
    inbound(fake, line, fixture("whatsapp.txt"))
    message = wait_for(lambda: customer_text("SM00000000000000000000000000000003"))
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(hours=25))
    with pytest.raises(conversations.ReplyRefused, match="24 hours"):
        outbound.reply(conversation=message.conversation, text="Hello?", by=alice)
    sent = outbound.send_template(
        conversation=message.conversation,
        channel=line,
        template="HX00000000000000000000000000000001",
        variables={"1": "1001"},
        by=alice,
    )
    wait_for(lambda: Message.objects.get(pk=sent.pk).status == "read", timeout=30)
    [out] = fake.sent
    assert out.get("ContentSid") == "HX00000000000000000000000000000001"
    assert out.get("ContentVariables") == '{"1": "1001"}'
    assert Message.objects.get(pk=sent.pk).provider_id == out.sid


def test_twilio_refusing_free_form_whatsapp_later_is_a_visible_failure_with_the_reason(fake, stack, support, alice):
    line = twilio_channel("twilio-whatsapp", team=support, api_base_url=fake.base_url, public_base_url=stack.base_url)
    fake.closed_windows.add("whatsapp:+15005550006")  # Twilio thinks the window closed; we did not know
    inbound(fake, line, fixture("whatsapp.txt"))
    message = wait_for(lambda: customer_text("SM00000000000000000000000000000003"))
    reply = outbound.reply(conversation=message.conversation, text="Still there?", by=alice)
    failed = wait_for(lambda: Message.objects.filter(pk=reply.pk, status="failed").first(), timeout=30)
    assert "24 hours" in failed.status_reason
    assert "63016" in failed.status_reason


def test_a_waiting_caller_is_offered_voicemail_by_the_worker_after_voicemail_after(fake, stack, support):
    phone = twilio_channel(
        "twilio-voice", team=support, api_base_url=fake.base_url, public_base_url=stack.base_url, voicemail_after="2"
    )
    base = f"{stack.base_url}/hooks/{phone.key}"
    call = {
        "CallSid": "CA00000000000000000000000000000042",
        "AccountSid": fake.account_sid,
        "From": "+15005550006",
        "To": "+15555550100",
        "CallStatus": "in-progress",
        "Direction": "inbound",
    }
    fake.send_webhook(f"{base}/voice/", {**call, "CallStatus": "ringing"}).raise_for_status()
    fake.send_webhook(f"{base}/dial-done/", {**call, "DialCallStatus": "no-answer"}).raise_for_status()
    # The hold music is long: Twilio will not ask again for minutes. The worker does not wait for it.
    wait = {**call, "QueueSid": "QU00000000000000000000000000000042", "QueueTime": "0", "QueuePosition": "1"}
    assert "<Play>" in fake.send_webhook(f"{base}/queue-wait/", wait).text
    wait_for(lambda: fake.dequeued, timeout=20)
    [(queue_sid, call_sid, params)] = fake.dequeued
    assert (queue_sid, call_sid) == ("QU00000000000000000000000000000042", "CA00000000000000000000000000000042")
    assert params["Url"] == [f"{base}/voicemail/"]
