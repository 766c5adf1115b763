"""Messenger and Instagram direct messages: batched events, attachments, postbacks, echoes of
replies typed in Meta's inbox, delivery and read watermarks, profiles, confirmed contact details,
and the 24-hour window with the HUMAN_AGENT tag."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from connectors.meta.messenger import profile_key
from customers.models import Customer, Identity
from inbox.models import Attachment, InboundEvent, Message
from inbox.services import conversations, inbound, outbound
from inbox.transport import InboundAttachment, InboundMessage
from tests.fakes.meta import (
    IGSID,
    INSTAGRAM_ID,
    PAGE_ID,
    PSID,
    fixture_bytes,
    meta_channel,
    page_callback,
    page_message,
    post_callback,
    running,
)

pytestmark = pytest.mark.django_db

TEXT_MID = "m_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
IMAGE_MID = "m_AbCdEfGhIjKlMnOpQrStUvWxYz0123456790"


@pytest.fixture
def fake():
    with running() as server:
        server.profiles[PSID] = {
            "first_name": "Dana",
            "last_name": "Levi",
            "profile_pic": "https://cdn.example.test/dana.jpg",
        }
        server.profiles[IGSID] = {
            "name": "Ines Gram",
            "username": "ines",
            "profile_pic": "https://cdn.example.test/ines.jpg",
        }
        yield server


@pytest.fixture
def messenger(support, fake):
    return meta_channel("messenger", team=support, graph=fake.base_url)


@pytest.fixture
def instagram(sales, fake):
    return meta_channel("instagram", team=sales, graph=fake.base_url)


def process_pending():
    for event in InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).order_by("pk"):
        try:
            inbound.process_inbound_event(event_id=event.pk)
        except Exception:  # noqa: S112 - left pending for a retry, as the task would
            continue


def deliver(client, channel, payload):
    response = post_callback(client, channel, payload)
    assert response.status_code == 200, response.content
    process_pending()


def batch_with_the_image_on_the_cdn(fake) -> bytes:
    url = fake.add_cdn("abc.jpg", b"\xff\xd8\xff-photo", "image/jpeg")
    return fixture_bytes("messenger_batch.json").replace(
        b"https://scontent.example.test/v/t1.15752-9/abc.jpg?_nc_cat=1&oh=00_x&oe=6759A1B2", url.encode()
    )


def test_a_batched_text_and_picture_are_two_messages_from_one_customer_named_by_their_profile(client, messenger, fake):
    deliver(client, messenger, batch_with_the_image_on_the_cdn(fake))
    text, picture = Message.objects.filter(direction="in").order_by("pk")
    assert text.text == "Hi, my order #1001 arrived broken"
    assert text.provider_id == TEXT_MID
    assert picture.provider_id == IMAGE_MID
    assert Attachment.objects.get(message=picture).file.read() == b"\xff\xd8\xff-photo"
    assert text.customer_id == picture.customer_id
    assert text.customer.name == "Dana Levi"
    assert list(Identity.objects.values_list("kind", "value")) == [("messenger", PSID)]
    # The CDN link is fetched without our token; the profile once, with it.
    cdn = next(c for c in fake.calls if c.path.startswith("/cdn/"))
    assert "Authorization" not in cdn.headers
    assert [c.path for c in fake.calls if c.path == f"/v25.0/{PSID}"] == [f"/v25.0/{PSID}"]


def test_the_same_batch_twice_is_two_messages_not_four(client, messenger, fake):
    body = batch_with_the_image_on_the_cdn(fake)
    deliver(client, messenger, body)
    deliver(client, messenger, body)
    assert Message.objects.filter(direction="in").count() == 2
    assert InboundEvent.objects.count() == 2


def test_a_postback_a_delivery_and_an_echo_of_a_reply_typed_in_metas_inbox(client, messenger, fake, alice):
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    conversation = Message.objects.get().conversation
    ours = Message.objects.create(
        conversation=conversation,
        customer_id=conversation.customer_id,
        channel=messenger,
        direction="out",
        sender="operator",
        text="How can we help?",
        address=PSID,
        provider_id="m_OurReply00000000000000000000000000001",
        status="sent",
        created_at=timezone.now(),
    )
    deliver(client, messenger, fixture_bytes("messenger_postback_delivery_echo.json"))
    postback = Message.objects.get(provider_id="m_PostBack000000000000000000000000000001")
    assert postback.text == "Talk to a human"
    assert postback.metadata["meta"]["postback"]["payload"] == "HANDOFF_HUMAN"
    ours.refresh_from_db()
    assert ours.status == "delivered"
    echo = Message.objects.get(provider_id="m_OurReply00000000000000000000000000002")
    assert echo.direction == "out"
    assert echo.text == "A colleague will reply shortly."
    assert echo.conversation_id == conversation.pk
    assert echo.metadata["meta"]["echo"] is True
    client.force_login(alice)
    page = client.get(reverse("inbox:conversation", args=[conversation.pk])).content.decode()
    assert "Sent from Meta's own inbox" in page


def test_the_echo_of_our_own_send_is_never_a_second_copy(client, messenger, fake):
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    conversation = Message.objects.get().conversation
    reply = outbound.reply(conversation=conversation, text="On it", by=None, sender="bot")
    # The echo arrives while the send is still on its way: it waits...
    echo = page_message("m_will_be_ours", "On it", sender=PAGE_ID, is_echo=True, app_id=1517776481860111)
    echo["recipient"] = {"id": PSID}
    Message.objects.filter(pk=reply.pk).update(status="sending")
    deliver(client, messenger, page_callback(echo))
    assert InboundEvent.objects.filter(status="pending").count() == 1
    # ...and once the send's id is stored, it is recognised as ours.
    Message.objects.filter(pk=reply.pk).update(status="sent", provider_id="m_will_be_ours")
    process_pending()
    assert Message.objects.filter(direction="out").count() == 1
    assert InboundEvent.objects.filter(status="processed").count() == 2


def test_an_echo_from_our_app_or_a_mid_we_just_sent_is_skipped_at_once(client, messenger, fake):
    messenger.settings["app_id"] = "1517776481860111"
    messenger.save()
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    conversation = Message.objects.get().conversation
    reply = outbound.reply(conversation=conversation, text="On it", by=None, sender="bot")
    outbound.deliver_message(message_id=reply.pk)
    sent_mid = fake.sent[0]["id"]
    for mid, app_id in (("m_from_our_app", 1517776481860111), (sent_mid, 999)):
        echo = page_message(mid, "On it", sender=PAGE_ID, is_echo=True, app_id=app_id)
        echo["recipient"] = {"id": PSID}
        deliver(client, messenger, page_callback(echo))
    assert Message.objects.filter(direction="out").count() == 1
    assert not InboundEvent.objects.filter(status="pending").exists()


def test_a_read_watermark_marks_every_earlier_reply_read(client, messenger, fake, alice):
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    conversation = Message.objects.get().conversation
    replies = []
    for text in ("One", "Two"):
        reply = outbound.reply(conversation=conversation, text=text, by=alice)
        outbound.deliver_message(message_id=reply.pk)
        replies.append(reply)
    read = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "timestamp": 1,
        "read": {"watermark": int(timezone.now().timestamp() * 1000) + 1000},
    }
    deliver(client, messenger, page_callback(read))
    assert set(Message.objects.filter(direction="out").values_list("status", flat=True)) == {"read"}


def test_a_reply_goes_out_as_a_response_inside_the_window(client, messenger, fake, alice):
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    conversation = Message.objects.get().conversation
    picture = InboundAttachment(filename="label.png", content_type="image/png", content=b"\x89PNG")
    reply = outbound.reply(conversation=conversation, text="Here is the label", by=alice, attachments=(picture,))
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    attachment, text = fake.sent
    assert attachment["message"]["attachment"]["type"] == "image"
    assert attachment["files"] == ["filedata"]
    assert text == {
        **text,
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Here is the label"},
    }
    reply.refresh_from_db()
    assert reply.provider_id == text["id"]
    post = next(c for c in fake.calls if c.path == f"/v25.0/{PAGE_ID}/messages")
    assert post.headers["Authorization"] == "Bearer EAAG-messenger-page-token"


def test_after_24_hours_a_reply_needs_the_human_agent_permission(client, messenger, fake, alice):
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    conversation = Message.objects.get().conversation
    Message.objects.filter(direction="in").update(created_at=timezone.now() - timedelta(days=2))
    with pytest.raises(conversations.ReplyRefused, match="human_agent=1"):
        outbound.reply(conversation=conversation, text="Sorry for the delay", by=alice)
    messenger.settings["human_agent"] = "1"
    messenger.save()
    reply = outbound.reply(conversation=conversation, text="Sorry for the delay", by=alice, channel=messenger)
    outbound.deliver_message(message_id=reply.pk)
    assert fake.sent[0]["messaging_type"] == "MESSAGE_TAG"
    assert fake.sent[0]["tag"] == "HUMAN_AGENT"
    Message.objects.filter(direction="in").update(created_at=timezone.now() - timedelta(days=8))
    with pytest.raises(conversations.ReplyRefused, match="more than 7 days ago"):
        outbound.reply(conversation=conversation, text="Hello again", by=alice, channel=messenger)


@pytest.mark.parametrize(("code", "words"), [("551", "blocked the Page"), ("2018278", "outside"), ("190", None)])
def test_messenger_errors_are_mapped(client, messenger, fake, alice, code, words):
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    reply = outbound.reply(conversation=Message.objects.get().conversation, text="Hi", by=alice)
    fake.fail_next(code)
    outcome = outbound.deliver_message(message_id=reply.pk)
    reply.refresh_from_db()
    if words is None:  # an invalid token: retried while the channel shows it needs fixing
        assert outcome.status == "queued"
        messenger.refresh_from_db()
        assert "access token" in messenger.state["meta"]["problem"]
    else:
        assert outcome.status == "failed"
        assert words in reply.status_reason or "24 hours" in reply.status_reason


def test_a_confirmed_email_quick_reply_links_the_address_to_the_customer(client, messenger, fake):
    customer = Customer.objects.create(name="Dana Levi")
    Identity.objects.create(customer=customer, kind="email", value="dana@customer.test")
    inbound.receive_message(channel=messenger, inbound=InboundMessage(provider_id="m_0", address=PSID, text="Hi"))
    answer = page_message("m_email", "dana@customer.test", quick_reply={"payload": "dana@customer.test"})
    deliver(client, messenger, page_callback(answer))
    psid_owner = Identity.objects.get(kind="messenger").customer
    # The address belongs to an existing customer already: it is never moved (a merge is an operator's call).
    assert Identity.objects.get(kind="email").customer == customer
    fresh = page_message("m_phone", "+1 500 555 0006", quick_reply={"payload": "+1 500 555 0006"})
    deliver(client, messenger, page_callback(fresh))
    assert Identity.objects.get(kind="phone", value="+15005550006").customer == psid_owner


def test_a_typed_email_is_not_taken_as_confirmed(client, messenger, fake):
    deliver(client, messenger, page_callback(page_message("m_typed", "my mail is eve@customer.test")))
    assert not Identity.objects.filter(kind="email").exists()


def test_the_send_can_ask_for_the_customers_email_with_a_quick_reply(client, messenger, fake, alice):
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    conversation = Message.objects.get().conversation
    reply = outbound.reply(
        conversation=conversation, text="Which email?", by=alice, metadata={"ask_contact": ["email"]}
    )
    outbound.deliver_message(message_id=reply.pk)
    assert fake.sent[0]["message"]["quick_replies"] == [{"content_type": "user_email"}]


def test_choices_go_out_as_quick_replies_and_a_tap_comes_back_with_its_payload(client, messenger, fake, alice):
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    conversation = Message.objects.get().conversation
    choices = [{"id": "csat:5", "title": "😀 5"}, {"id": "csat:1", "title": "😞 1"}]
    reply = outbound.reply(conversation=conversation, text="How did we do?", by=alice, metadata={"choices": choices})
    outbound.deliver_message(message_id=reply.pk)
    assert fake.sent[0]["message"]["quick_replies"] == [
        {"content_type": "text", "title": "😀 5", "payload": "csat:5"},
        {"content_type": "text", "title": "😞 1", "payload": "csat:1"},
    ]

    deliver(client, messenger, page_callback(page_message("m_tap", "😀 5", quick_reply={"payload": "csat:5"})))
    tap = Message.objects.get(provider_id="m_tap")
    assert tap.text == "😀 5"
    assert tap.metadata["choice"] == "csat:5"


def test_a_confirmed_address_quick_reply_is_no_choice(client, messenger, fake):
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    answer = page_message("m_email", "eve@customer.test", quick_reply={"payload": "eve@customer.test"})
    deliver(client, messenger, page_callback(answer))
    assert "choice" not in Message.objects.get(provider_id="m_email").metadata


def test_a_reaction_shows_on_our_message_and_standby_events_are_kept(client, messenger, fake, alice):
    deliver(client, messenger, page_callback(page_message("m_first", "Hello")))
    conversation = Message.objects.get().conversation
    reply = outbound.reply(conversation=conversation, text="Done!", by=alice)
    outbound.deliver_message(message_id=reply.pk)
    mid = fake.sent[0]["id"]
    reaction = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "timestamp": 2,
        "reaction": {"mid": mid, "action": "react", "emoji": "❤"},
    }
    deliver(client, messenger, page_callback(reaction))
    reply.refresh_from_db()
    assert reply.metadata["meta"]["reaction"] == "❤"
    deliver(client, messenger, page_callback(page_message("m_standby", "Still there?"), source="standby"))
    assert Message.objects.get(provider_id="m_standby").metadata["meta"]["standby"] is True


def test_a_profile_is_fetched_once_per_customer(client, messenger, fake):
    deliver(client, messenger, page_callback(page_message("m_1", "One")))
    deliver(client, messenger, page_callback(page_message("m_2", "Two")))
    cache.delete(profile_key(messenger.key, PSID))  # the cache is gone: the customer's name is known
    deliver(client, messenger, page_callback(page_message("m_3", "Three")))
    assert len([c for c in fake.calls if c.path == f"/v25.0/{PSID}"]) == 1
    assert Message.objects.get(provider_id="m_1").metadata["meta"]["profile_pic"] == "https://cdn.example.test/dana.jpg"


def test_a_page_id_no_channel_has_fails_visibly_and_another_pages_events_go_to_its_channel(
    client, messenger, sales, fake
):
    other = meta_channel("messenger", team=sales, graph=fake.base_url, page_id="999", name="Second page")
    deliver(client, messenger, page_callback(page_message("m_other", "Hi other", page_id="999"), page_id="999"))
    assert Message.objects.get(provider_id="m_other").channel == other
    deliver(client, messenger, page_callback(page_message("m_none", "Hi?", page_id="123"), page_id="123"))
    failed = InboundEvent.objects.get(status="failed")
    assert "no channel of this Meta app has page_id 123" in failed.error


# -- Instagram ----------------------------------------------------------------------------------------------


def test_instagram_messages_stories_and_replies_reach_the_thread(client, instagram, fake, alice):
    mention = page_message(
        "ig_mention",
        sender=IGSID,
        page_id=INSTAGRAM_ID,
        attachments=[{"type": "story_mention", "payload": {"url": "https://lookaside.example.test/story/1"}}],
    )
    reply = page_message(
        "ig_story_reply",
        "Love this!",
        sender=IGSID,
        page_id=INSTAGRAM_ID,
        reply_to={"story": {"url": "https://lookaside.example.test/story/2", "id": "2"}},
    )
    deliver(client, instagram, page_callback(mention, reply, object_type="instagram", page_id=INSTAGRAM_ID))
    first = Message.objects.get(provider_id="ig_mention")
    assert first.text == "Mentioned you in their story"
    assert first.metadata["meta"]["links"][0]["url"] == "https://lookaside.example.test/story/1"
    second = Message.objects.get(provider_id="ig_story_reply")
    assert second.metadata["meta"]["story_reply"] == "https://lookaside.example.test/story/2"
    assert first.customer.name == "Ines Gram"
    assert list(Identity.objects.values_list("kind", "value")) == [("instagram", IGSID)]
    assert first.channel.medium == "instagram"
    client.force_login(alice)  # Support: the Instagram channel belongs to Sales
    assert client.get(reverse("inbox:conversation", args=[first.conversation_id])).status_code == 404


def test_instagram_replies_go_to_the_account_and_refuse_attachments(client, instagram, fake, bob):
    deliver(
        client,
        instagram,
        page_callback(
            page_message("ig_1", "Hi", sender=IGSID, page_id=INSTAGRAM_ID),
            object_type="instagram",
            page_id=INSTAGRAM_ID,
        ),
    )
    conversation = Message.objects.get().conversation
    reply = outbound.reply(conversation=conversation, text="Hello Ines", by=bob)
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    assert fake.sent[0]["recipient"] == {"id": IGSID}
    assert any(c.path == f"/v25.0/{INSTAGRAM_ID}/messages" for c in fake.calls)
    picture = InboundAttachment(filename="a.png", content_type="image/png", content=b"x")
    seen = {
        "sender": {"id": IGSID},
        "recipient": {"id": INSTAGRAM_ID},
        "timestamp": 3,
        "read": {"mid": fake.sent[0]["id"]},
    }
    deliver(client, instagram, page_callback(seen, object_type="instagram", page_id=INSTAGRAM_ID))
    reply.refresh_from_db()
    assert reply.status == "read"
    failing = outbound.reply(conversation=conversation, text="", by=bob, attachments=(picture,))
    assert outbound.deliver_message(message_id=failing.pk).status == "failed"
    failing.refresh_from_db()
    assert "cannot send attachments on Instagram" in failing.status_reason
