"""Viber: the signature (CHANNELS.md §8 vector), callbacks (dedupe on event + int64 token, messages
of every type, media downloaded at once, contacts, subscriptions, receipts), sending and its status
codes. Viber's API is a local stand-in (tests/fakes/viber.py)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import override_settings

from connectors.viber.connector import SHARE_PHONE, signature
from customers.models import Identity
from inbox.models import Channel, InboundEvent, Message, OptOut
from inbox.services import channels, conversations, inbound, outbound
from inbox.transport import ConfigurationError, InboundAttachment
from tests.fakes.viber import AUTH_TOKEN, USER, USER_ID, message_event, running, sign

PUBLIC = "https://inbox.example.test"
VECTOR_BODY = (
    b'{"event":"webhook","timestamp":1763800000000,"chat_hostname":"SN-CHAT-01_","message_token":5741311803571721087}'
)
VECTOR_SIGNATURE = "cf402d0a81e0b5af780c260bf10f51d9ebdff8fa99a896708470ec869a5e7215"
SAMPLE_TEXT = (
    '{"event":"message","timestamp":1763832600000,"chat_hostname":"SN-CHAT-01_","message_token":5741311803571721087,'
    '"sender":{"id":"01234567890A=","name":"Alice Customer","avatar":"https://avatar.example.test/a.jpg","language":"en","country":"US","api_version":10},'
    '"message":{"type":"text","text":"Hi, my order #1001 arrived broken","tracking_data":"conv-8f3k2"},"silent":false}'
)


@pytest.fixture
def fake():
    # Django's test client is not reachable over HTTP: set_webhook does not call back here.
    with running(verify_webhooks=False) as server:
        yield server


def viber_channel(fake, team, **extra):
    values = {
        "auth_token": AUTH_TOKEN,
        "sender_name": "Acme Support",
        "api_base_url": fake.base_url,
        "public_base_url": PUBLIC,
        **extra,
    }
    return channels.create_channel(kind="viber", name="Viber", team=team, channel_settings=values)


@pytest.fixture
def bot(fake, support):
    return viber_channel(fake, support)


def post(client, channel, payload, *, signature_value=None, endpoint="inbound"):
    body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    headers = {"X-Viber-Content-Signature": sign(body) if signature_value is None else signature_value}
    return client.post(f"/hooks/{channel.key}/{endpoint}/", data=body, content_type="application/json", headers=headers)


def deliver(client, channel, payload):
    response = post(client, channel, payload)
    assert response.status_code == 200, response.content
    event = InboundEvent.objects.filter(channel=channel).order_by("-pk").first()
    inbound.process_inbound_event(event_id=event.pk)
    event.refresh_from_db()
    return event


def run_with_hooks(event):
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        inbound.process_inbound_event(event_id=event.pk)


def customer_messages():
    return Message.objects.filter(direction="in", kind="message").order_by("pk")


# -- the signature --------------------------------------------------------------------------------


def test_the_signature_matches_the_channels_md_vector():
    assert signature(VECTOR_BODY, AUTH_TOKEN) == VECTOR_SIGNATURE
    assert sign(VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_vector_callback_is_accepted_and_a_tampered_one_refused(client, bot):
    assert post(client, bot, VECTOR_BODY.decode(), signature_value=VECTOR_SIGNATURE).status_code == 200
    tampered = VECTOR_BODY.replace(b"1763800000000", b"1763800000001")
    assert post(client, bot, tampered.decode(), signature_value=VECTOR_SIGNATURE).status_code == 403
    assert post(client, bot, VECTOR_BODY.decode(), signature_value="").status_code == 403
    # The webhook check is answered and not stored.
    assert not InboundEvent.objects.exists()


def test_a_forged_message_is_403_and_nothing_is_stored(client, bot):
    response = post(client, bot, SAMPLE_TEXT, signature_value=sign(SAMPLE_TEXT.encode(), "another-token"))
    assert response.status_code == 403
    assert not InboundEvent.objects.exists()


def test_malformed_callbacks_are_400(client, bot):
    for body in ("{oops", "[1, 2]", '{"no_event": 1}'):
        assert post(client, bot, body).status_code == 400
    assert not InboundEvent.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_an_oversized_callback_is_413(client, bot):
    payload = message_event({"type": "text", "text": "x" * 5000}, token=1)
    assert post(client, bot, payload).status_code == 413


# -- connecting -----------------------------------------------------------------------------------


def test_adding_a_bot_registers_the_webhook_for_the_events_we_handle(fake, bot):
    path, payload = fake.requests[-1]
    assert path == "/pa/set_webhook"
    assert payload["url"] == f"{PUBLIC}/hooks/{bot.key}/inbound/"
    assert set(payload["event_types"]) == {
        "delivered",
        "seen",
        "failed",
        "subscribed",
        "unsubscribed",
        "conversation_started",
    }


def test_a_refused_token_or_a_missing_sender_name_creates_no_channel(fake, support):
    with pytest.raises(ConfigurationError, match="auth token"):
        viber_channel(fake, support, auth_token="wrong")
    with pytest.raises(ConfigurationError, match="sender_name"):
        viber_channel(fake, support, sender_name="")
    assert not Channel.objects.exists()


def test_channel_add_prints_the_webhook_but_not_the_token(fake, support, capsys):
    call_command(
        "channel",
        "add",
        "viber",
        "--name",
        "Viber",
        "--set",
        f"auth_token={AUTH_TOKEN}",
        "--set",
        "sender_name=Acme Support",
        "--set",
        f"api_base_url={fake.base_url}",
        "--set",
        f"public_base_url={PUBLIC}",
    )
    printed = json.loads(capsys.readouterr().out)
    channel = Channel.objects.get()
    assert printed["webhooks"] == {"inbound": f"{PUBLIC}/hooks/{channel.key}/inbound/"}
    assert AUTH_TOKEN not in json.dumps(printed)


def test_switching_the_channel_off_removes_the_webhook(fake, bot):
    fake.webhook = {"url": "x"}
    call_command("channel", "disable", str(bot.pk))
    assert fake.requests[-1] == ("/pa/set_webhook", {"url": ""})
    assert not Channel.objects.get().is_active


# -- inbound --------------------------------------------------------------------------------------


def test_the_channels_md_text_message_becomes_the_customers_message(client, bot):
    event = deliver(client, bot, SAMPLE_TEXT)
    assert event.dedupe_key == "message:5741311803571721087"
    message = customer_messages().get()
    assert message.text == "Hi, my order #1001 arrived broken"
    assert message.provider_id == "5741311803571721087"  # exact, never through a float
    assert message.address == USER_ID
    assert message.customer.name == "Alice Customer"
    assert message.customer.identities.get().kind == "viber"
    assert message.metadata["viber"]["country"] == "US"


def test_the_same_callback_twice_is_one_message(client, bot):
    deliver(client, bot, SAMPLE_TEXT)
    deliver(client, bot, SAMPLE_TEXT)
    assert InboundEvent.objects.count() == 1
    assert customer_messages().count() == 1


def test_a_picture_is_downloaded_at_once_with_its_caption(client, fake, bot):
    url = fake.add_media("p.jpg", b"\xff\xd8viber-jpeg", "image/jpeg")
    event = deliver(
        client,
        bot,
        message_event({"type": "picture", "media": url, "text": "The box", "size": 11}, token=5741311803571721100),
    )
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    message = customer_messages().get()
    assert message.text == "The box"
    attachment = message.attachments.get()
    assert attachment.file.read() == b"\xff\xd8viber-jpeg"
    assert attachment.content_type == "image/jpeg"


def test_a_file_whose_link_expired_keeps_the_message_and_says_why(client, fake, bot):
    gone = fake.base_url.removesuffix("/pa") + "/media/expired.pdf"
    deliver(
        client, bot, message_event({"type": "file", "media": gone, "file_name": "invoice.pdf", "size": 10}, token=7)
    )
    message = customer_messages().get()
    assert not message.attachments.exists()
    assert "expire" in message.metadata["skipped_attachments"][0]["reason"]
    assert message.metadata["skipped_attachments"][0]["filename"] == "invoice.pdf"


def test_every_message_type_is_shown(client, fake, bot):
    video = fake.add_media("v.mp4", b"mp4", "video/mp4")
    sticker = fake.add_media("s.png", b"png", "image/png")
    kinds = [
        {"type": "video", "media": video, "size": 3, "duration": 2},
        {"type": "sticker", "sticker_id": 46105, "media": sticker},
        {"type": "location", "location": {"lat": 50.45, "lon": 30.52}},
        {"type": "url", "media": "https://shop.example.test/order/1001"},
        {"type": "rich_media", "rich_media": {}},
    ]
    for token, body in enumerate(kinds, start=100):
        assert deliver(client, bot, message_event(body, token=token)).status == InboundEvent.Status.PROCESSED
    moving, still, place, link, rich = customer_messages()
    assert moving.attachments.get().content_type == "video/mp4"
    assert still.attachments.get().content_type == "image/png"
    assert "50.45" in place.text
    assert link.text == "https://shop.example.test/order/1001"
    assert "rich_media" in rich.text


def test_the_phone_shared_with_our_button_joins_the_customer_with_that_numbers_history(client, bot, sms):
    from connectors.simulator import customer_says

    customer_says(medium="sms", address="+15005550006", text="Where is my order?")
    inbound.process_inbound_event(event_id=InboundEvent.objects.get(channel=sms).pk)
    sms_customer = Message.objects.get(channel=sms).customer
    deliver(client, bot, SAMPLE_TEXT)
    contact = {
        "type": "contact",
        "contact": {"name": "Alice Customer", "phone_number": "+15005550006"},
        "tracking_data": SHARE_PHONE,
    }
    post(client, bot, message_event(contact, token=5741311803571721090))
    run_with_hooks(InboundEvent.objects.filter(channel=bot).order_by("-pk").first())
    assert Identity.objects.get(kind="viber").customer_id == sms_customer.pk
    assert {m.customer_id for m in Message.objects.filter(kind="message")} == {sms_customer.pk}


def test_a_contact_card_not_sent_through_our_button_is_only_suggested(client, bot, sms):
    from connectors.simulator import customer_says
    from customers.services import suggest_duplicates

    customer_says(medium="sms", address="+15005550006", text="Hello")
    inbound.process_inbound_event(event_id=InboundEvent.objects.get(channel=sms).pk)
    sample = (
        '{"event":"message","timestamp":1763832660000,"chat_hostname":"SN-CHAT-01_","message_token":5741311803571721090,'
        '"sender":{"id":"01234567890A=","name":"Alice Customer","language":"en","country":"US","api_version":10},'
        '"message":{"type":"contact","contact":{"name":"Alice Customer","phone_number":"+15005550006"}}}'
    )
    post(client, bot, sample)
    run_with_hooks(InboundEvent.objects.filter(channel=bot).get())
    viber_customer = Identity.objects.get(kind="viber").customer
    assert viber_customer.pk != Identity.objects.get(kind="phone").customer_id
    assert [reason for _c, reason in suggest_duplicates(customer=viber_customer)] == ["same phone in profile"]


def test_conversation_started_is_answered_with_the_welcome_message_and_opens_nothing(client, fake, support):
    channel = viber_channel(fake, support, welcome_message="Hi! Ask us anything.")
    started = (
        '{"event":"conversation_started","timestamp":1763832590000,"chat_hostname":"SN-CHAT-01_","message_token":5741311803571721085,'
        '"type":"open","context":"order-1001","user":{"id":"01234567890A=","name":"Alice Customer","avatar":"https://avatar.example.test/a.jpg",'
        '"language":"en","country":"US","api_version":10},"subscribed":false}'
    )
    response = post(client, channel, started)
    assert response.status_code == 200
    assert response.json() == {"sender": {"name": "Acme Support"}, "type": "text", "text": "Hi! Ask us anything."}
    inbound.process_inbound_event(event_id=InboundEvent.objects.get().pk)
    assert not Message.objects.exists()


def test_an_unsubscribed_customer_is_not_sent_to_until_they_subscribe_again(client, fake, bot, alice):
    deliver(client, bot, SAMPLE_TEXT)
    conversation = customer_messages().get().conversation
    deliver(
        client, bot, {"event": "unsubscribed", "timestamp": 1, "user_id": USER_ID, "message_token": 4912661846655238000}
    )
    assert OptOut.objects.filter(channel=bot).exists()
    refusal = outbound.reply_refusal(conversation=conversation, channel=bot)
    assert "opted out" in refusal
    with pytest.raises(conversations.ReplyRefused):
        outbound.reply(conversation=conversation, text="Hello?", by=alice)
    deliver(client, bot, {"event": "subscribed", "timestamp": 2, "user": USER, "message_token": 4912661846655238001})
    assert outbound.reply_refusal(conversation=conversation, channel=bot) == ""


def test_an_unknown_event_is_a_recorded_replayable_failure(client, bot):
    event = deliver(client, bot, {"event": "something_new", "timestamp": 1, "message_token": 9})
    assert event.status == InboundEvent.Status.FAILED
    assert "unsupported Viber event" in event.error


# -- outbound -------------------------------------------------------------------------------------


def conversation(client, bot):
    deliver(client, bot, SAMPLE_TEXT)
    return customer_messages().get().conversation


def send(conv, text, by, **kwargs):
    message = outbound.reply(conversation=conv, text=text, by=by, **kwargs)
    outcome = outbound.deliver_message(message_id=message.pk)
    message.refresh_from_db()
    return message, outcome


def test_a_reply_goes_out_with_the_sender_name_and_its_token_kept_exact(client, fake, bot, alice):
    message, outcome = send(conversation(client, bot), "We are on it", alice)
    assert outcome.status == "sent"
    (sent,) = fake.sent
    assert sent["receiver"] == USER_ID
    assert sent["sender"] == {"name": "Acme Support"}
    assert sent["type"] == "text"
    assert sent["text"] == "We are on it"
    assert message.provider_id == str(sent["_token"])
    assert sent["_token"] > 2**53


def test_receipts_move_the_status_forward_only(client, fake, bot, alice):
    message, _outcome = send(conversation(client, bot), "Hello", alice)
    token = int(message.provider_id)
    for kind in ("seen", "delivered", "seen"):
        deliver(client, bot, {"event": kind, "timestamp": 1, "message_token": token, "user_id": USER_ID})
    message.refresh_from_db()
    assert message.status == "read"


def test_a_failed_receipt_shows_vibers_reason(client, fake, bot, alice):
    message, _outcome = send(conversation(client, bot), "Hello", alice)
    deliver(
        client,
        bot,
        {
            "event": "failed",
            "timestamp": 1,
            "message_token": int(message.provider_id),
            "user_id": USER_ID,
            "desc": "failure description",
        },
    )
    message.refresh_from_db()
    assert message.status == "failed"
    assert "failure description" in message.status_reason


def test_a_long_reply_is_split_within_7000_characters(client, fake, bot, alice):
    send(conversation(client, bot), "A" * 6000 + "\n\n" + "B" * 6000, alice)
    assert [len(m["text"]) for m in fake.sent] == [6000, 6000]


def test_a_picture_goes_by_our_signed_link_which_serves_it_and_nothing_else(client, fake, bot, alice):
    picture = InboundAttachment(filename="label.png", content_type="image/png", content=b"\x89PNG-label")
    send(conversation(client, bot), "Your label", alice, attachments=(picture,))
    text, image = fake.sent
    assert text["text"] == "Your label"
    assert image["type"] == "picture"
    assert image["media"].startswith(f"{PUBLIC}/hooks/{bot.key}/media/?a=")
    assert image["media"].endswith(".png")
    path = image["media"].removeprefix(PUBLIC)
    served = client.get(path)
    assert served.status_code == 200
    assert served.content == b"\x89PNG-label"
    assert client.get(path.replace("?a=", "?a=x")).status_code == 404
    assert client.get(f"/hooks/{bot.key}/media/").status_code == 404


def test_a_large_file_goes_as_a_file_with_its_size(client, fake, bot, alice):
    pdf = InboundAttachment(filename="invoice.pdf", content_type="application/pdf", content=b"%PDF" * 10)
    send(conversation(client, bot), "", alice, attachments=(pdf,))
    (sent,) = fake.sent
    assert (sent["type"], sent["file_name"], sent["size"]) == ("file", "invoice.pdf", 40)


def test_too_many_requests_and_server_errors_are_retried(client, fake, bot, alice):
    fake.fail_next("tooManyRequests", "500")
    message, outcome = send(conversation(client, bot), "Hello", alice)
    assert outcome.status == "queued"
    assert "rate limiting" in message.status_reason
    assert outbound.deliver_message(message_id=message.pk).status == "queued"
    assert outbound.deliver_message(message_id=message.pk).status == "sent"
    assert len(fake.delivered()) == 1


@pytest.mark.parametrize(
    ("where", "words"), [("not_registered", "not a Viber user"), ("not_subscribed", "unsubscribed")]
)
def test_an_unreachable_receiver_is_a_readable_permanent_failure(client, fake, bot, alice, where, words):
    getattr(fake, where).add(USER_ID)
    conv = conversation(client, bot)
    message, outcome = send(conv, "Hello", alice)
    assert outcome.status == "failed"
    assert words in message.status_reason
    assert OptOut.objects.filter(channel=bot, customer=conv.customer).exists()


def test_a_message_from_an_unsubscribed_customer_makes_them_reachable_again(client, fake, bot, alice):
    conv = conversation(client, bot)
    conversations.opt_out(channel=bot, customer=conv.customer, reason="Unsubscribed")
    post(client, bot, message_event({"type": "text", "text": "back"}, token=5741311803571729999))
    run_with_hooks(InboundEvent.objects.order_by("-pk").first())
    assert not OptOut.objects.exists()


def test_asking_for_the_phone_sends_a_share_phone_keyboard(client, fake, bot, alice):
    send(conversation(client, bot), "Share your phone so we can find your order", alice, metadata={"ask_phone": True})
    (sent,) = fake.sent
    assert sent["keyboard"]["Buttons"][0]["ActionType"] == "share-phone"
    assert sent["min_api_version"] == 3
    assert sent["tracking_data"] == SHARE_PHONE


def test_the_reply_box_says_an_unsubscribed_customer_cannot_be_sent_to_and_offers_their_other_channels(
    client, fake, bot, sms, alice
):
    from customers.services import link_identity

    conv = conversation(client, bot)
    link_identity(customer=conv.customer, kind="phone", value="+15005550006", verified=True)
    deliver(
        client, bot, {"event": "unsubscribed", "timestamp": 1, "user_id": USER_ID, "message_token": 4912661846655238002}
    )
    client.force_login(alice)
    page = client.get(f"/c/{conv.pk}/").content.decode()
    assert "opted out of Viber" in page
    assert f'data-reply-on="{sms.pk}"' in page
    assert "data-reply-blocked" in page


def test_the_bot_asks_a_new_customer_for_their_phone_when_the_channel_says_so(client, fake, support):
    channel = viber_channel(fake, support, ask_phone_first="1")
    post(client, channel, SAMPLE_TEXT)
    run_with_hooks(InboundEvent.objects.get())
    asked = Message.objects.get(direction="out")
    assert (asked.sender, asked.metadata) == ("bot", {"ask_phone": True})
    outbound.deliver_message(message_id=asked.pk)
    assert fake.sent[0]["keyboard"]["Buttons"][0]["ActionType"] == "share-phone"


# -- choices: a keyboard of reply buttons, and the tap coming back -------------------------------------

CHOICES = [{"id": f"csat:{n}", "title": f"{n}/5"} for n in range(5, 0, -1)]


def test_choices_go_out_as_a_keyboard_of_reply_buttons(client, fake, bot, alice):
    send(conversation(client, bot), "How would you rate our help?", alice, metadata={"choices": CHOICES})
    (sent,) = fake.sent
    buttons = sent["keyboard"]["Buttons"]
    assert [(b["ActionType"], b["ActionBody"], b["Text"]) for b in buttons] == [
        ("reply", c["id"], c["title"]) for c in CHOICES
    ]
    assert sum(b["Columns"] for b in buttons) <= 6
    assert sent["tracking_data"].startswith("parley:choices:")


def test_a_tapped_reply_button_comes_back_as_its_title_carrying_the_choice(client, fake, bot, alice):
    send(conversation(client, bot), "How would you rate our help?", alice, metadata={"choices": CHOICES})
    (sent,) = fake.sent
    # Viber sends the button's ActionBody as the text, and echoes our tracking data.
    tap = {"type": "text", "text": "csat:4", "tracking_data": sent["tracking_data"]}
    deliver(client, bot, message_event(tap, token=5741311803571720001))
    stored = Message.objects.filter(direction="in").latest("pk")
    assert stored.text == "4/5"
    assert stored.metadata["choice"] == "csat:4"


def test_typed_text_after_a_keyboard_is_no_choice(client, fake, bot, alice):
    send(conversation(client, bot), "How would you rate our help?", alice, metadata={"choices": CHOICES})
    (sent,) = fake.sent
    typed = {"type": "text", "text": "It was fine", "tracking_data": sent["tracking_data"]}
    deliver(client, bot, message_event(typed, token=5741311803571720002))
    stored = Message.objects.filter(direction="in").latest("pk")
    assert stored.text == "It was fine"
    assert "choice" not in stored.metadata
