"""Telegram: connecting a bot, inbound updates (secret, dedupe, media, contacts, edits, albums),
sending through the Bot API, its errors, and polling. The Bot API is a local stand-in
(tests/fakes/telegram.py); updates are built with python-telegram-bot's objects."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import override_settings

from customers.models import Identity
from inbox.models import Channel, InboundEvent, Message, OptOut
from inbox.services import channels, conversations, inbound, outbound
from inbox.transport import ConfigurationError, InboundAttachment
from tests.fakes.telegram import (
    ALICE,
    TOKEN,
    callback_update,
    contact_update,
    photo_update,
    running,
    text_update,
)

PUBLIC = "https://inbox.example.test"


@pytest.fixture
def fake():
    with running() as server:
        yield server


def telegram_channel(fake, team, **extra):
    values = {"bot_token": TOKEN, "api_base_url": fake.base_url, "public_base_url": PUBLIC, **extra}
    return channels.create_channel(kind="telegram", name="Telegram", team=team, channel_settings=values)


@pytest.fixture
def bot(fake, support):
    return telegram_channel(fake, support)


def post(client, channel, update, *, secret=None):
    body = update if isinstance(update, (str, bytes)) else json.dumps(update)
    headers = {}
    token = channel.settings.get("secret_token", "") if secret is None else secret
    if token:
        headers["X-Telegram-Bot-Api-Secret-Token"] = token
    return client.post(f"/hooks/{channel.key}/inbound/", data=body, content_type="application/json", headers=headers)


def deliver(client, channel, update):
    response = post(client, channel, update)
    assert response.status_code == 200, response.content
    event = InboundEvent.objects.filter(channel=channel).order_by("-pk").first()
    inbound.process_inbound_event(event_id=event.pk)
    event.refresh_from_db()
    return event


def customer_messages():
    return Message.objects.filter(direction="in", kind="message").order_by("pk")


# -- connecting ---------------------------------------------------------------------------------


def test_adding_a_bot_checks_the_token_and_registers_the_webhook_with_a_fresh_secret(fake, bot):
    assert [c.method for c in fake.calls] == ["getMe", "setWebhook"]
    assert fake.webhook["url"] == f"{PUBLIC}/hooks/{bot.key}/inbound/"
    secret = bot.settings["secret_token"]
    assert len(secret) >= 32
    assert fake.webhook["secret_token"] == secret
    assert fake.webhook["allowed_updates"] == ["message", "edited_message", "callback_query", "my_chat_member"]
    assert bot.settings["bot_username"] == "acme_support_bot"


def test_a_refused_token_creates_no_channel(fake, support):
    with pytest.raises(ConfigurationError, match="refused the bot token"):
        telegram_channel(fake, support, bot_token="123:wrong")
    assert not Channel.objects.exists()


def test_a_webhook_url_that_is_not_https_is_refused_with_what_to_do(support):
    with (
        running(accept_http=False) as strict,
        pytest.raises(ConfigurationError, match="HTTPS address, or use mode=polling"),
    ):
        telegram_channel(strict, support, public_base_url="http://127.0.0.1:8000")
    assert not Channel.objects.exists()


def test_channel_add_prints_the_webhook_and_never_the_token_or_secret(fake, support, capsys):
    call_command(
        "channel",
        "add",
        "telegram",
        "--name",
        "Telegram",
        "--set",
        f"bot_token={TOKEN}",
        "--set",
        f"api_base_url={fake.base_url}",
        "--set",
        f"public_base_url={PUBLIC}",
    )
    printed = json.loads(capsys.readouterr().out)
    channel = Channel.objects.get()
    assert printed["webhooks"] == {"inbound": f"{PUBLIC}/hooks/{channel.key}/inbound/"}
    assert printed["settings"]["bot_token"] == "***"
    assert printed["settings"]["secret_token"] == "***"
    assert TOKEN not in json.dumps(printed)


def test_disabling_or_removing_the_channel_deletes_the_webhook(fake, bot):
    channels.set_channel_active(channel=bot, active=False)
    assert fake.calls[-1].method == "deleteWebhook"
    assert not fake.webhook
    channels.set_channel_active(channel=bot, active=True)
    assert fake.webhook["url"].endswith(f"/hooks/{bot.key}/inbound/")
    assert channels.remove_channel(channel=bot) is True
    assert not fake.webhook
    assert not Channel.objects.exists()


def test_polling_mode_removes_any_webhook_and_takes_no_webhook_calls(fake, support, client):
    fake.webhook = {"url": "https://old.example.test/"}
    channel = telegram_channel(fake, support, mode="polling")
    assert [c.method for c in fake.calls] == ["getMe", "deleteWebhook"]
    assert not fake.webhook
    response = post(client, channel, text_update(fake, "hi"), secret="anything")
    assert response.status_code == 403
    assert not InboundEvent.objects.exists()


# -- inbound ------------------------------------------------------------------------------------


def test_a_private_text_becomes_a_message_from_the_telegram_user(client, fake, bot):
    event = deliver(client, bot, text_update(fake, "Hello, my order #1001 arrived broken"))
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    message = customer_messages().get()
    assert message.text == "Hello, my order #1001 arrived broken"
    assert message.address == str(ALICE.id)
    assert message.customer.name == "Alice Customer"
    identity = message.customer.identities.get()
    assert (identity.kind, identity.value) == ("telegram", str(ALICE.id))
    assert message.metadata["telegram"]["username"] == "alice_c"
    assert message.channel.medium == "telegram"
    # The handle names the customer wherever their name would show, should the name go.
    assert identity.display == "@alice_c"
    message.customer.name = ""
    assert message.customer.display_name == "@alice_c"


def test_the_channels_md_sample_update_is_read(client, bot):
    sample = (
        '{"update_id":512345678,"message":{"message_id":41,"date":1763832600,'
        '"from":{"id":987654321,"is_bot":false,"first_name":"Alice","last_name":"Customer","username":"alice_c","language_code":"en"},'
        '"chat":{"id":987654321,"type":"private","first_name":"Alice","last_name":"Customer","username":"alice_c"},'
        '"text":"Hello, my order #1001 arrived broken"}}'
    )
    deliver(client, bot, sample)
    message = customer_messages().get()
    assert message.provider_id == "987654321:41"
    assert InboundEvent.objects.get().dedupe_key == "update:512345678"


def test_the_same_update_twice_is_one_event_and_one_message(client, fake, bot):
    update = text_update(fake, "Hello")
    deliver(client, bot, update)
    deliver(client, bot, update)
    assert InboundEvent.objects.count() == 1
    assert customer_messages().count() == 1


def test_a_wrong_or_missing_secret_is_403_and_nothing_is_stored(client, fake, bot):
    update = text_update(fake, "forged")
    assert post(client, bot, update, secret="not-the-secret").status_code == 403
    assert post(client, bot, update, secret="").status_code == 403
    assert not InboundEvent.objects.exists()


def test_malformed_updates_are_refused_with_400(client, bot):
    assert post(client, bot, "{not json").status_code == 400
    assert post(client, bot, '{"message": {}}').status_code == 400
    assert post(client, bot, '["update_id", 1]').status_code == 400
    assert not InboundEvent.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_an_oversized_update_is_413(client, fake, bot):
    response = post(client, bot, text_update(fake, "x" * 5000))
    assert response.status_code == 413
    assert not InboundEvent.objects.exists()


def test_group_chats_and_membership_updates_are_recorded_and_ignored(client, fake, bot, caplog):
    import telegram

    group = telegram.Chat(id=-100123, type=telegram.constants.ChatType.GROUP, title="Friends")
    event = deliver(client, bot, text_update(fake, "hi all", chat=group))
    assert event.status == InboundEvent.Status.PROCESSED
    member = {
        "update_id": fake.update_id(),
        "my_chat_member": {
            "chat": {"id": ALICE.id, "type": "private"},
            "from": {"id": ALICE.id, "is_bot": False, "first_name": "Alice"},
            "date": 1763832600,
            "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True, "first_name": "Bot"}},
            "new_chat_member": {
                "status": "kicked",
                "until_date": 0,
                "user": {"id": 1, "is_bot": True, "first_name": "Bot"},
            },
        },
    }
    event = deliver(client, bot, member)
    assert event.status == InboundEvent.Status.PROCESSED
    assert not Message.objects.exists()
    assert "only private chats" in caplog.text
    assert "my_chat_member" in caplog.text


def test_an_unknown_update_type_is_a_recorded_replayable_failure(client, fake, bot):
    event = deliver(client, bot, {"update_id": fake.update_id(), "poll": {"id": "1", "question": "?"}})
    assert event.status == InboundEvent.Status.FAILED
    assert "unsupported update type: poll" in event.error
    assert bytes(event.body)  # kept for a replay


def test_a_photo_is_fetched_largest_size_with_getfile_and_its_caption_kept(client, fake, bot):
    fake.add_file("AgACAgQAAxkBAAIBKmZlarge", b"\xff\xd8large-jpeg")
    fake.add_file("AgACAgQAAxkBAAIBKmZlarge-small", b"\xff\xd8small")
    event = deliver(client, bot, photo_update(fake, "AgACAgQAAxkBAAIBKmZlarge", caption="The box"))
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    message = customer_messages().get()
    assert message.text == "The box"
    attachment = message.attachments.get()
    assert attachment.file.read() == b"\xff\xd8large-jpeg"
    assert attachment.content_type == "image/jpeg"
    assert [c.params["file_id"] for c in fake.calls if c.method == "getFile"] == ["AgACAgQAAxkBAAIBKmZlarge"]


def test_a_document_voice_and_sticker_are_stored_as_files(client, fake, bot):
    import telegram

    fake.add_file("doc1", b"%PDF-1.4", path="documents/invoice.pdf")
    fake.add_file("voice1", b"OggS", path="voice/file_1.oga")
    fake.add_file("sticker1", b"RIFFwebp", path="stickers/file_2.webp")
    document = telegram.Document(
        file_id="doc1", file_unique_id="d1", file_name="invoice.pdf", mime_type="application/pdf"
    )
    voice = telegram.Voice(file_id="voice1", file_unique_id="v1", duration=3, mime_type="audio/ogg")
    sticker = telegram.Sticker(
        file_id="sticker1",
        file_unique_id="s1",
        width=512,
        height=512,
        is_animated=False,
        is_video=False,
        type="regular",
        emoji="👍",
    )
    animated = telegram.Sticker(
        file_id="sticker2",
        file_unique_id="s2",
        width=512,
        height=512,
        is_animated=True,
        is_video=False,
        type="regular",
        emoji="🎉",
    )
    from tests.fakes.telegram import build_update

    for fields in ({"document": document}, {"voice": voice}, {"sticker": sticker}, {"sticker": animated}):
        event = deliver(client, bot, build_update(fake, **fields))
        assert event.status == InboundEvent.Status.PROCESSED, event.error
    doc, note, still, moving = customer_messages()
    assert doc.attachments.get().filename == "invoice.pdf"
    assert doc.attachments.get().content_type == "application/pdf"
    assert note.attachments.get().content_type == "audio/ogg"
    assert still.attachments.get().content_type == "image/webp"
    assert still.text == "👍"
    assert moving.text == "🎉"
    assert not moving.attachments.exists()


def test_a_file_telegram_refuses_keeps_the_text_and_says_why(client, fake, bot):
    event = deliver(client, bot, photo_update(fake, "gone-file", caption="Look"))
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    message = customer_messages().get()
    assert message.text == "Look"
    assert not message.attachments.exists()
    assert "invalid file_id" in message.metadata["skipped_attachments"][0]["reason"]


def test_a_file_over_the_bots_20_mb_limit_is_not_fetched_and_the_text_kept(client, fake, bot):
    import telegram

    from tests.fakes.telegram import build_update

    video = telegram.Video(
        file_id="big", file_unique_id="b", width=1, height=1, duration=60, file_size=30 * 1024 * 1024
    )
    deliver(client, bot, build_update(fake, video=video, caption="My unboxing"))
    message = customer_messages().get()
    assert message.text == "My unboxing"
    assert "20 MB" in message.metadata["skipped_attachments"][0]["reason"]
    assert not [c for c in fake.calls if c.method == "getFile"]


def test_a_location_is_readable_text(client, fake, bot):
    import telegram

    from tests.fakes.telegram import build_update

    deliver(client, bot, build_update(fake, location=telegram.Location(latitude=50.45, longitude=30.52)))
    message = customer_messages().get()
    assert "50.45" in message.text
    assert "30.52" in message.text
    assert message.metadata["location"] == {"lat": 50.45, "lon": 30.52}


# -- contacts and one customer across channels --------------------------------------------------


def test_sharing_their_own_phone_joins_the_customer_with_that_numbers_sms_history(client, fake, bot, sms):
    from connectors.simulator import customer_says

    customer_says(medium="sms", address="+15005550006", text="Where is my order?")
    inbound.process_inbound_event(event_id=InboundEvent.objects.get(channel=sms).pk)
    sms_customer = Message.objects.get(channel=sms).customer
    deliver(client, bot, text_update(fake, "Hi from Telegram"))
    # Telegram sends the number without its plus; it is the sender's own (contact.user_id == from.id).
    assert post(client, bot, contact_update(fake, "15005550006", user_id=ALICE.id)).status_code == 200
    run_with_hooks(InboundEvent.objects.filter(channel=bot).order_by("-pk").first())
    assert Identity.objects.get(kind="telegram").customer_id == sms_customer.pk
    assert Identity.objects.get(kind="phone").customer_id == sms_customer.pk
    shared = customer_messages().last()
    assert "15005550006" in shared.text
    assert shared.metadata["shared_phone"]["verified"] is True
    # One thread: the SMS and the Telegram messages are the same customer's.
    assert {m.customer_id for m in Message.objects.filter(kind="message")} == {sms_customer.pk}


def run_with_hooks(event):
    """Process an event and run what its commit triggers (receivers), as the worker does."""
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        inbound.process_inbound_event(event_id=event.pk)


def test_someone_elses_contact_is_never_linked_only_suggested(client, fake, bot, sms):
    from connectors.simulator import customer_says
    from customers.services import suggest_duplicates

    customer_says(medium="sms", address="+15005550006", text="Hello")
    inbound.process_inbound_event(event_id=InboundEvent.objects.get(channel=sms).pk)
    post(client, bot, contact_update(fake, "+15005550006", user_id=555))
    run_with_hooks(InboundEvent.objects.filter(channel=bot).get())
    telegram_customer = Identity.objects.get(kind="telegram").customer
    sms_customer = Identity.objects.get(kind="phone").customer
    assert telegram_customer.pk != sms_customer.pk
    assert telegram_customer.attributes["phone"] == "+15005550006"
    assert [c.pk for c, _reason in suggest_duplicates(customer=telegram_customer)] == [sms_customer.pk]


def test_a_shared_phone_nobody_has_becomes_the_customers_phone(client, fake, bot):
    post(client, bot, contact_update(fake, "+15005550077", user_id=ALICE.id))
    run_with_hooks(InboundEvent.objects.get())
    customer = Identity.objects.get(kind="telegram").customer
    phone = customer.identities.get(kind="phone")
    assert phone.value == "+15005550077"
    assert phone.verified


# -- edits and albums ---------------------------------------------------------------------------


def test_an_edit_rewrites_the_message_and_shows_it_was_edited(client, fake, bot):
    original = text_update(fake, "My order is #1001", message_id=50)
    deliver(client, bot, original)
    edit = text_update(
        fake, "My order is #1002", message_id=50, edited=True, edit_date=original["message"]["date"] + 30
    )
    event = deliver(client, bot, edit)
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    message = customer_messages().get()
    assert message.text == "My order is #1002"
    assert message.metadata["edits"][0]["text"] == "My order is #1001"
    assert message.metadata["edited_at"]
    older = text_update(fake, "My order is #10", message_id=50, edited=True, edit_date=original["message"]["date"] + 10)
    deliver(client, bot, older)
    assert customer_messages().get().text == "My order is #1002"


def test_an_edit_that_arrives_before_its_original_keeps_the_edited_text_once(client, fake, bot):
    original = text_update(fake, "typo", message_id=60)
    edit = text_update(fake, "fixed", message_id=60, edited=True, edit_date=original["message"]["date"] + 5)
    deliver(client, bot, edit)
    deliver(client, bot, original)
    message = customer_messages().get()
    assert message.text == "fixed"
    assert message.metadata["edited_at"]


def test_an_album_is_one_group_of_messages(client, fake, bot):
    fake.add_file("p1", b"one")
    fake.add_file("p2", b"two")
    deliver(client, bot, photo_update(fake, "p1", caption="Both sides", media_group_id="1390"))
    deliver(client, bot, photo_update(fake, "p2", media_group_id="1390"))
    first, second = customer_messages()
    assert first.metadata["album"] == second.metadata["album"] == "1390"
    assert first.conversation_id == second.conversation_id


# -- outbound -----------------------------------------------------------------------------------


def conversation_with_alice(client, fake, bot):
    deliver(client, bot, text_update(fake, "Hello"))
    return customer_messages().get().conversation


def send(conversation, text, by, **kwargs):
    message = outbound.reply(conversation=conversation, text=text, by=by, **kwargs)
    outcome = outbound.deliver_message(message_id=message.pk)
    message.refresh_from_db()
    return message, outcome


def test_a_reply_goes_out_with_sendmessage_to_the_chat(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    message, outcome = send(conversation, "We are on it", alice)
    assert outcome.status == "sent"
    (call,) = fake.sent()
    assert call.method == "sendMessage"
    assert call.params["chat_id"] in (ALICE.id, str(ALICE.id))
    assert call.params["text"] == "We are on it"
    assert message.provider_id.startswith(f"{ALICE.id}:")


def test_a_long_reply_is_split_at_paragraphs_into_parts_telegram_accepts(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    first = "A" * 3000
    second = "B" * 3000
    send(conversation, f"{first}\n\n{second}", alice)
    texts = [c.params["text"] for c in fake.sent()]
    assert texts == [first, second]


def test_an_attachment_with_a_short_text_is_one_photo_with_a_caption(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    picture = InboundAttachment(filename="label.png", content_type="image/png", content=b"\x89PNG-label")
    send(conversation, "Your return label", alice, attachments=(picture,))
    (call,) = fake.sent()
    assert call.method == "sendPhoto"
    assert call.params["caption"] == "Your return label"
    assert call.files["photo"][1] == b"\x89PNG-label"


def test_a_document_goes_with_senddocument(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    pdf = InboundAttachment(filename="invoice.pdf", content_type="application/pdf", content=b"%PDF")
    send(conversation, "", alice, attachments=(pdf,))
    (call,) = fake.sent()
    assert call.method == "sendDocument"
    assert call.files["document"][0] == "invoice.pdf"


def test_a_429_is_retried_after_telegrams_retry_after(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    fake.fail_next("429")
    message, outcome = send(conversation, "Hello again", alice)
    assert outcome.status == "queued"
    assert outcome.retry_in == 1
    assert message.status == "queued"
    assert "rate limiting" in message.status_reason
    outcome = outbound.deliver_message(message_id=message.pk)
    assert outcome.status == "sent"
    assert len(fake.delivered()) == 1


def test_sends_to_one_chat_are_paced_to_about_one_a_second(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    send(conversation, "One", alice)
    send(conversation, "Two", alice)
    first, second = fake.delivered()
    assert second.at - first.at >= 0.9


def test_a_server_error_is_transient(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    fake.fail_next("500")
    message, outcome = send(conversation, "Hello", alice)
    assert outcome.status == "queued"
    assert outbound.deliver_message(message_id=message.pk).status == "sent"


def test_a_retry_after_a_failure_in_the_middle_sends_only_the_missing_parts(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    fake.fail_next("", "500")  # the first part goes, the second fails
    message, outcome = send(conversation, "A" * 3000 + "\n\n" + "B" * 3000, alice)
    assert outcome.status == "queued"
    assert outbound.deliver_message(message_id=message.pk).status == "sent"
    assert [c.params["text"][0] for c in fake.delivered()] == ["A", "B"]


def test_a_customer_who_blocked_the_bot_is_a_readable_failure_and_unreachable_until_they_write(
    client, fake, bot, alice
):
    conversation = conversation_with_alice(client, fake, bot)
    fake.blocked.add(ALICE.id)
    message, outcome = send(conversation, "Still there?", alice)
    assert outcome.status == "failed"
    assert "blocked the bot" in message.status_reason
    assert OptOut.objects.filter(channel=bot, customer=conversation.customer).exists()
    assert outbound.reply_refusal(conversation=conversation, channel=bot)
    with pytest.raises(conversations.ReplyRefused):
        outbound.reply(conversation=conversation, text="again", by=alice)
    fake.blocked.clear()
    post(client, bot, text_update(fake, "I unblocked you"))
    run_with_hooks(InboundEvent.objects.filter(channel=bot).order_by("-pk").first())
    assert not OptOut.objects.filter(channel=bot).exists()
    assert outbound.reply_refusal(conversation=conversation, channel=bot) == ""


def test_a_customer_who_never_started_the_bot_cannot_be_written_first(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    fake.never_started.add(ALICE.id)
    message, outcome = send(conversation, "Hi", alice)
    assert outcome.status == "failed"
    assert "not started a chat" in message.status_reason


def test_asking_for_the_phone_sends_a_request_contact_keyboard(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    send(conversation, "Share your phone so we can find your order", alice, metadata={"ask_phone": True})
    (call,) = fake.sent()
    button = call.params["reply_markup"]["keyboard"][0][0]
    assert button["request_contact"] is True


# -- polling ------------------------------------------------------------------------------------


def test_polling_stores_each_update_once_and_keeps_the_offset_across_restarts(fake, support):
    from connectors.telegram.polling import offset_of, poll

    channel = telegram_channel(fake, support, mode="polling")
    first, second = text_update(fake, "one"), text_update(fake, "two")
    fake.queue_update(first)
    fake.queue_update(second)
    report = poll(channel, timeout=0)
    assert (report.fetched, report.stored) == (2, 2)
    assert offset_of(channel) == second["update_id"] + 1
    # A "restart": a new poll asks from the stored offset; Telegram forgets confirmed updates.
    third = text_update(fake, "three")
    fake.queue_update(third)
    report = poll(Channel.objects.get(pk=channel.pk), timeout=0)
    assert (report.fetched, report.stored) == (1, 1)
    offsets = [c.params.get("offset") for c in fake.calls if c.method == "getUpdates"]
    assert offsets == [None, second["update_id"] + 1]
    assert sorted(InboundEvent.objects.values_list("dedupe_key", flat=True)) == [
        f"update:{u['update_id']}" for u in (first, second, third)
    ]
    for event in InboundEvent.objects.order_by("pk"):
        inbound.process_inbound_event(event_id=event.pk)
    assert [m.text for m in customer_messages()] == ["one", "two", "three"]


def test_a_poll_that_telegram_refuses_records_the_error_and_keeps_the_offset(fake, support):
    from connectors.telegram.polling import offset_of, poll

    channel = telegram_channel(fake, support, mode="polling")
    fake.webhook = {"url": "https://elsewhere.example.test/"}  # someone set a webhook meanwhile
    report = poll(channel, timeout=0)
    assert report.fetched == 0
    channel.refresh_from_db()
    assert "409" in channel.state["telegram"]["error"]
    assert offset_of(channel) == 0


def test_the_thread_shows_an_edit_and_groups_an_album(client, fake, bot, alice):
    original = text_update(fake, "first words", message_id=70)
    deliver(client, bot, original)
    deliver(
        client,
        bot,
        text_update(fake, "better words", message_id=70, edited=True, edit_date=original["message"]["date"] + 9),
    )
    fake.add_file("a1", b"one")
    fake.add_file("a2", b"two")
    deliver(client, bot, photo_update(fake, "a1", media_group_id="77"))
    deliver(client, bot, photo_update(fake, "a2", media_group_id="77"))
    client.force_login(alice)
    page = client.get(f"/c/{customer_messages().first().conversation_id}/").content.decode()
    assert "better words" in page
    assert "data-edited" in page
    assert page.count('data-album="77"') == 2
    assert page.count("in-album") >= 2


def test_an_operator_asks_for_the_phone_with_a_button_in_the_reply_box(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    client.force_login(alice)
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert "data-ask-phone" in page
    response = client.post(f"/c/{conversation.pk}/ask-phone/", {"channel": bot.pk}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    asked = Message.objects.get(direction="out")
    assert asked.metadata == {"ask_phone": True}
    outbound.deliver_message(message_id=asked.pk)
    assert fake.sent()[0].params["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    # Once the number is known, the button is gone.
    post(client, bot, contact_update(fake, "+15005550077", user_id=ALICE.id))
    run_with_hooks(InboundEvent.objects.order_by("-pk").first())
    assert "data-ask-phone" not in client.get(f"/c/{conversation.pk}/").content.decode()


def test_asking_for_the_phone_is_refused_to_another_team_anonymous_visitors_and_other_channels(
    client, fake, bot, bob, alice, sms
):
    conversation = conversation_with_alice(client, fake, bot)
    url = f"/c/{conversation.pk}/ask-phone/"
    anonymous = client.post(url, {"channel": bot.pk})
    assert anonymous.status_code == 302
    assert "/login/" in anonymous["Location"]
    client.force_login(bob)
    assert client.post(url, {"channel": bot.pk}).status_code == 404
    client.force_login(alice)
    assert client.post(url, {"channel": sms.pk}).status_code == 400  # the customer has no SMS address
    assert client.post(url, {"channel": "x"}).status_code == 400
    assert client.get(url).status_code == 405
    assert not Message.objects.filter(direction="out").exists()


def test_replying_to_a_customers_message_quotes_it_in_telegram(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    question = customer_messages().get()
    client.force_login(alice)
    response = client.post(
        f"/c/{conversation.pk}/send/",
        {"mode": "reply", "text": "Yes, that one", "channel": bot.pk, "reply_to": question.pk},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "In reply to" in response.content.decode()
    answer = Message.objects.get(direction="out")
    assert answer.metadata["reply_to"] == question.pk
    outbound.deliver_message(message_id=answer.pk)
    (call,) = fake.sent()
    assert call.params["reply_parameters"]["message_id"] == question.metadata["telegram"]["message_id"]


def test_replying_to_another_customers_message_is_refused(client, fake, bot, alice):
    import telegram

    other = telegram.User(id=1111, is_bot=False, first_name="Olga")
    deliver(client, bot, text_update(fake, "Olga's question", from_user=other))
    deliver(client, bot, text_update(fake, "Hello"))
    conversation = Message.objects.get(text="Hello").conversation
    olgas = Message.objects.get(text="Olga's question")
    client.force_login(alice)
    response = client.post(
        f"/c/{conversation.pk}/send/",
        {"mode": "reply", "text": "Hi", "channel": bot.pk, "reply_to": olgas.pk},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400
    assert not Message.objects.filter(direction="out").exists()


def test_the_bot_token_never_reaches_the_logs(client, fake, bot, alice, caplog):
    import logging

    caplog.set_level(logging.INFO)
    fake.add_file("p-log", b"jpeg")
    deliver(client, bot, photo_update(fake, "p-log", caption="x"))
    send(customer_messages().get().conversation, "Hello", alice)
    assert fake.delivered()
    assert TOKEN not in caplog.text
    assert TOKEN.split(":")[1] not in caplog.text


def test_the_bot_asks_a_new_customer_for_their_phone_once_when_the_channel_says_so(client, fake, support):
    channel = telegram_channel(fake, support, ask_phone_first="1")
    post(client, channel, text_update(fake, "Hello"))
    run_with_hooks(InboundEvent.objects.get())
    asked = Message.objects.get(direction="out")
    assert (asked.sender, asked.metadata) == ("bot", {"ask_phone": True})
    post(client, channel, text_update(fake, "Are you there?"))
    run_with_hooks(InboundEvent.objects.order_by("-pk").first())
    assert Message.objects.filter(direction="out").count() == 1


# -- choices: an inline keyboard, and the tap coming back ----------------------------------------------

CHOICES = [{"id": "csat:5", "title": "😀 5"}, {"id": "csat:4", "title": "🙂 4"}, {"id": "csat:1", "title": "😞 1"}]


def test_choices_go_out_as_an_inline_keyboard_under_the_text(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    _message, outcome = send(conversation, "How would you rate our help?", alice, metadata={"choices": CHOICES})
    assert outcome.status == "sent"
    (call,) = fake.sent()
    assert call.params["text"] == "How would you rate our help?"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": c["title"], "callback_data": c["id"]} for c in CHOICES]]
    }


def test_a_tapped_button_is_answered_and_comes_back_as_a_message_carrying_the_choice(client, fake, bot, alice):
    conversation = conversation_with_alice(client, fake, bot)
    message, _outcome = send(conversation, "How would you rate our help?", alice, metadata={"choices": CHOICES})
    ours = int(message.provider_id.split(":")[1])

    event = deliver(client, bot, callback_update(fake, "csat:4", message_id=ours))

    assert event.status == "processed"
    tap = customer_messages().last()
    assert tap.conversation == conversation
    assert tap.text == "🙂 4"
    assert tap.metadata["choice"] == "csat:4"
    (answer,) = [c for c in fake.calls if c.method == "answerCallbackQuery"]
    assert answer.params["callback_query_id"]
    assert customer_messages().filter(metadata__choice="csat:4").count() == 1


def test_a_tap_on_a_message_we_do_not_know_keeps_the_choice_id_as_its_text(client, fake, bot):
    event = deliver(client, bot, callback_update(fake, "csat:2", message_id=999))

    assert event.status == "processed"
    tap = customer_messages().get()
    assert (tap.text, tap.metadata["choice"]) == ("csat:2", "csat:2")
