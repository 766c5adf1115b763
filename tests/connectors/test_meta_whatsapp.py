"""WhatsApp Cloud API, inbound: one callback's messages and statuses each stored once and routed
by phone_number_id; text, media fetched with the token, the other message types; identities that
link with SMS and voice; statuses that only move forward."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from customers.models import Customer, Identity
from inbox.models import Attachment, Conversation, InboundEvent, Message
from inbox.services import inbound
from inbox.transport import InboundMessage
from tests.fakes.meta import (
    APP_SECRET,
    CUSTOMER_WA_ID,
    fixture_bytes,
    meta_channel,
    post_callback,
    running,
    wa_callback,
    wa_contact,
    wa_message,
    wa_text_callback,
    wa_value,
)

pytestmark = pytest.mark.django_db

OUR_WAMID = "wamid.HBgLMTUwMDU1NTAwMDYVAgARGBI5QUJDREVGMDEyMzQ1Njc4OQA="
FAILED_WAMID = "wamid.HBgLMTUwMDU1NTAwMDYVAgARGBJGQUlMRURNRVNTQUdFMDEA"
TEXT_WAMID = "wamid.HBgLMTUwMDU1NTAwMDYVAgASGBQzQUJDMTIzNDU2Nzg5MEFCQ0RFRgA="
IMAGE_WAMID = "wamid.HBgLMTUwMDU1NTAwMDYVAgASGBQzQUJDMTIzNDU2Nzg5MEFCQ0RFMQA="
BSUID = "US.13491208655302741918"


@pytest.fixture
def fake():
    with running() as server:
        yield server


@pytest.fixture
def whatsapp(support, fake):
    return meta_channel("whatsapp-cloud", team=support, graph=fake.base_url)


def process_pending():
    """What the worker does with every stored event (in the order they were stored)."""
    for event in InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).order_by("pk"):
        try:
            inbound.process_inbound_event(event_id=event.pk)
        except Exception:  # noqa: S112 - left pending for a retry, as the task would
            continue


def deliver(client, channel, payload):
    response = post_callback(client, channel, payload)
    assert response.status_code == 200, response.content
    process_pending()
    return response


def our_message(channel, conversation=None, provider_id=OUR_WAMID, status="sent", text="Your new box ships today"):
    """A reply of ours to Alice (+15005550006) on the channel, as the worker leaves it."""
    if conversation is None:
        customer = Customer.objects.create(name="Alice Customer")
        Identity.objects.create(customer=customer, kind="phone", value="+15005550006")
        conversation = Conversation.objects.create(
            customer=customer, team=channel.team, last_channel=channel, last_message_at=timezone.now()
        )
    return Message.objects.create(
        conversation=conversation,
        customer_id=conversation.customer_id,
        channel=channel,
        direction="out",
        sender="operator",
        text=text,
        address="+15005550006",
        provider_id=provider_id,
        status=status,
        created_at=timezone.now(),
    )


# -- text, identities -------------------------------------------------------------------------------


def our_status(wamid: str, status: str, callback_data: str) -> dict[str, str]:
    """A WhatsApp status callback naming ``callback_data`` (our message's public id, echoed back)."""
    return {
        "id": wamid,
        "status": status,
        "timestamp": "1763832700",
        "recipient_id": CUSTOMER_WA_ID,
        "biz_opaque_callback_data": callback_data,
    }


def test_the_documented_text_message_becomes_a_customer_message(client, whatsapp):
    deliver(client, whatsapp, fixture_bytes("whatsapp_text.json"))
    message = Message.objects.get(kind="message")
    assert message.text == "Hi, my order #1001 arrived broken"
    assert message.provider_id == TEXT_WAMID
    assert message.address == "+15005550006"
    assert message.customer.name == "Alice Customer"
    assert InboundEvent.objects.get().dedupe_key == f"wa:msg:{TEXT_WAMID}"
    # The phone links with SMS and voice; the business-scoped user id is kept too.
    assert set(message.customer.identities.values_list("kind", "value")) == {
        ("phone", "+15005550006"),
        ("whatsapp", BSUID),
    }


def test_the_same_callback_twice_is_one_event_and_one_message(client, whatsapp):
    deliver(client, whatsapp, fixture_bytes("whatsapp_text.json"))
    deliver(client, whatsapp, fixture_bytes("whatsapp_text.json"))
    assert InboundEvent.objects.count() == 1
    assert Message.objects.filter(kind="message").count() == 1


def test_a_callback_with_several_entries_changes_and_messages_stores_each_once(client, whatsapp):
    def change(*ids):
        return wa_value(contacts=[wa_contact()], messages=[wa_message(i, body=f"part {i}") for i in ids])

    payload = wa_callback(change("wamid.A1", "wamid.A2"), change("wamid.A3"))
    payload["entry"].append(
        {"id": "102290129340398", "changes": [{"field": "messages", "value": change("wamid.A4", "wamid.A1")}]}
    )
    deliver(client, whatsapp, payload)
    deliver(client, whatsapp, wa_callback(change("wamid.A4", "wamid.A5")))  # Meta retries part of it
    assert sorted(Message.objects.filter(kind="message").values_list("text", flat=True)) == [
        f"part wamid.A{n}" for n in range(1, 6)
    ]
    assert InboundEvent.objects.count() == 5
    assert Customer.objects.count() == 1
    assert Message.objects.values("conversation").distinct().count() == 1


def test_whatsapp_and_sms_from_one_number_are_one_customer_in_one_thread(client, whatsapp, sms):
    inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="sms-1", address="+1 500 555 0006", text="Hi by SMS")
    )
    deliver(client, whatsapp, fixture_bytes("whatsapp_text.json"))
    first, second = Message.objects.filter(kind="message").order_by("pk")
    assert first.customer_id == second.customer_id
    assert first.conversation_id == second.conversation_id


def test_a_customer_who_withholds_their_number_is_one_customer_by_their_user_id(client, whatsapp):
    deliver(client, whatsapp, wa_text_callback("wamid.U1", "Hello", wa_id="", user_id=BSUID))
    deliver(client, whatsapp, wa_text_callback("wamid.U2", "Still me", wa_id="", user_id=BSUID))
    assert Customer.objects.count() == 1
    assert list(Identity.objects.values_list("kind", "value")) == [("whatsapp", BSUID)]
    assert set(Message.objects.values_list("address", flat=True)) == {BSUID}
    # Later they share their number: still the same customer, now reachable by phone as well.
    deliver(client, whatsapp, wa_text_callback("wamid.U3", "My number", user_id=BSUID))
    assert Customer.objects.count() == 1
    assert set(Identity.objects.values_list("kind", flat=True)) == {"whatsapp", "phone"}


# -- media ----------------------------------------------------------------------------------------------


def test_an_image_is_fetched_with_the_token_and_a_reply_to_our_message_quotes_it(client, whatsapp, fake):
    ours = our_message(whatsapp)
    fake.add_media("1479537139650973", b"\xff\xd8\xff-jpeg-bytes", "image/jpeg")
    deliver(client, whatsapp, fixture_bytes("whatsapp_image.json"))
    message = Message.objects.get(provider_id=IMAGE_WAMID)
    assert message.text == "The box"
    attachment = Attachment.objects.get(message=message)
    assert attachment.content_type == "image/jpeg"
    assert attachment.file.read() == b"\xff\xd8\xff-jpeg-bytes"
    assert message.metadata["meta"]["reply_to"] == {"id": OUR_WAMID, "text": "Your new box ships today", "ours": True}
    assert message.conversation_id == ours.conversation_id
    downloads = [c for c in fake.calls if c.method == "GET"]
    assert [c.path for c in downloads] == ["/v25.0/1479537139650973", "/media-download/1479537139650973"]
    assert all(c.headers["Authorization"] == "Bearer EAAG-whatsapp-system-user-token" for c in downloads)


def test_a_voice_note_and_a_document_keep_their_kind_and_name(client, whatsapp, fake):
    fake.add_media("900", b"OggS-voice", "audio/ogg")
    fake.add_media("901", b"%PDF-1.7", "application/pdf")
    messages = [
        wa_message("wamid.V", "audio", audio={"id": "900", "mime_type": "audio/ogg; codecs=opus", "voice": True}),
        wa_message(
            "wamid.D",
            "document",
            document={
                "id": "901",
                "mime_type": "application/pdf",
                "filename": "invoice-1001.pdf",
                "caption": "My invoice",
            },
        ),
    ]
    deliver(client, whatsapp, wa_callback(wa_value(contacts=[wa_contact()], messages=messages)))
    voice = Message.objects.get(provider_id="wamid.V")
    assert voice.metadata["meta"]["voice"] is True
    assert voice.attachments.get().content_type == "audio/ogg"
    document = Message.objects.get(provider_id="wamid.D")
    assert document.text == "My invoice"
    assert document.attachments.get().filename == "invoice-1001.pdf"


@override_settings(PARLEY_MAX_ATTACHMENT_BYTES=10)
def test_media_larger_than_the_cap_is_skipped_and_noted_and_the_caption_kept(client, whatsapp, fake):
    fake.add_media("1479537139650973", b"x" * 100, "image/jpeg")
    deliver(client, whatsapp, fixture_bytes("whatsapp_image.json"))
    message = Message.objects.get(provider_id=IMAGE_WAMID)
    assert message.text == "The box"
    assert not message.attachments.exists()
    assert "larger than 10 bytes" in message.metadata["skipped_attachments"][0]["reason"]


def test_media_meta_no_longer_has_is_skipped_with_the_reason(client, whatsapp, fake):
    deliver(client, whatsapp, fixture_bytes("whatsapp_image.json"))
    message = Message.objects.get(provider_id=IMAGE_WAMID)
    assert not message.attachments.exists()
    assert "Meta error 100" in message.metadata["skipped_attachments"][0]["reason"]


# -- the other message types ----------------------------------------------------------------------------


def test_locations_contacts_buttons_and_list_replies_read_as_text(client, whatsapp):
    messages = [
        wa_message(
            "wamid.L",
            "location",
            location={"latitude": 52.52, "longitude": 13.405, "name": "Shop", "address": "Main St 1"},
        ),
        wa_message(
            "wamid.C",
            "contacts",
            contacts=[
                {"name": {"formatted_name": "Bob Friend"}, "phones": [{"phone": "+1 555 0100", "wa_id": "15550100"}]}
            ],
        ),
        wa_message(
            "wamid.B",
            "interactive",
            interactive={"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes, replace it"}},
        ),
        wa_message(
            "wamid.R",
            "interactive",
            interactive={
                "type": "list_reply",
                "list_reply": {"id": "p2", "title": "Refund", "description": "Money back"},
            },
        ),
        wa_message("wamid.T", "button", button={"text": "Track my order", "payload": "TRACK"}),
        wa_message("wamid.X", "unsupported", errors=[{"code": 131051, "title": "Message type unknown"}]),
    ]
    deliver(client, whatsapp, wa_callback(wa_value(contacts=[wa_contact()], messages=messages)))
    text = dict(Message.objects.values_list("provider_id", "text"))
    assert text["wamid.L"] == "Shared a location: Shop Main St 1 52.52, 13.405"
    assert text["wamid.C"] == "Shared a contact: Bob Friend +1 555 0100"
    assert text["wamid.B"] == "Yes, replace it"
    assert text["wamid.R"] == "Refund\nMoney back"
    assert text["wamid.T"] == "Track my order"
    assert "type unsupported" in text["wamid.X"]
    assert Message.objects.get(provider_id="wamid.T").metadata["meta"]["button"]["payload"] == "TRACK"
    assert Message.objects.get(provider_id="wamid.B").metadata["meta"]["interactive"]["id"] == "yes"
    # A tapped reply button or list row carries its id as the choice (the transport's contract);
    # a template's quick-reply button is no choice we offered.
    assert Message.objects.get(provider_id="wamid.B").metadata["choice"] == "yes"
    assert Message.objects.get(provider_id="wamid.R").metadata["choice"] == "p2"
    assert "choice" not in Message.objects.get(provider_id="wamid.T").metadata


def test_a_reaction_shows_on_the_message_it_reacts_to(client, whatsapp, alice):
    ours = our_message(whatsapp)
    reaction = wa_message("wamid.RE", "reaction", reaction={"message_id": OUR_WAMID, "emoji": "👍"})
    deliver(client, whatsapp, wa_callback(wa_value(contacts=[wa_contact()], messages=[reaction])))
    ours.refresh_from_db()
    assert ours.metadata["meta"]["reaction"] == "👍"
    assert not Message.objects.filter(direction="in").exists()
    client.force_login(alice)
    page = client.get(reverse("inbox:conversation", args=[ours.conversation_id])).content.decode()
    assert 'class="msg-reaction"' in page
    assert "👍" in page
    # Taking the reaction back takes it off.
    undo = wa_message("wamid.RE2", "reaction", reaction={"message_id": OUR_WAMID, "emoji": ""})
    deliver(client, whatsapp, wa_callback(wa_value(contacts=[wa_contact()], messages=[undo])))
    ours.refresh_from_db()
    assert "reaction" not in ours.metadata["meta"]


def test_an_ad_click_is_kept_on_the_message_and_shown(client, whatsapp, alice):
    referral = {
        "source_url": "https://fb.me/ad123",
        "source_type": "ad",
        "source_id": "123",
        "headline": "Spring sale",
        "ctwa_clid": "ARAk",
    }
    message = wa_message("wamid.AD", body="I saw your ad", referral=referral)
    deliver(client, whatsapp, wa_callback(wa_value(contacts=[wa_contact()], messages=[message])))
    stored = Message.objects.get(provider_id="wamid.AD")
    assert stored.metadata["meta"]["referral"]["headline"] == "Spring sale"
    client.force_login(alice)
    page = client.get(reverse("inbox:conversation", args=[stored.conversation_id])).content.decode()
    assert "Came from an ad:" in page
    assert "https://fb.me/ad123" in page


# -- statuses -----------------------------------------------------------------------------------------------


def test_statuses_out_of_order_move_forward_only_and_a_failure_says_metas_title(client, whatsapp):
    read = our_message(whatsapp)
    failed = our_message(whatsapp, read.conversation, provider_id=FAILED_WAMID)
    deliver(client, whatsapp, fixture_bytes("whatsapp_statuses.json"))
    read.refresh_from_db()
    failed.refresh_from_db()
    assert read.status == "read"  # the later "sent" did not move it back
    assert failed.status == "failed"
    assert failed.status_reason.startswith("Re-engagement message: More than 24 hours have passed")
    assert "(Meta error 131047)" in failed.status_reason
    assert InboundEvent.objects.filter(status="processed").count() == 3


def test_a_status_that_comes_before_the_sends_answer_waits_for_it(client, whatsapp):
    sending = our_message(whatsapp, provider_id="", status="sending")
    status = our_status("wamid.EARLY", "delivered", str(sending.public_id))
    deliver(client, whatsapp, wa_callback(wa_value(statuses=[status])))
    event = InboundEvent.objects.get()
    assert event.status == "pending"
    assert event.attempts == 1
    Message.objects.filter(pk=sending.pk).update(provider_id="wamid.EARLY", status="sent")
    process_pending()
    sending.refresh_from_db()
    assert sending.status == "delivered"


def test_a_status_naming_our_id_confirms_a_send_whose_answer_was_lost(client, whatsapp):
    # The send timed out: failed, "may or may not have gone out". Meta's status says it did.
    lost = our_message(whatsapp, provider_id="", status="failed")
    Message.objects.filter(pk=lost.pk).update(status_reason="Meta did not answer in time")
    status = our_status("wamid.LATE", "read", str(lost.public_id))
    deliver(client, whatsapp, wa_callback(wa_value(statuses=[status])))
    lost.refresh_from_db()
    assert (lost.provider_id, lost.status, lost.status_reason) == ("wamid.LATE", "read", "")
    assert InboundEvent.objects.get().status == "processed"


def test_a_status_naming_an_id_that_is_not_ours_is_processed_and_ignored(client, whatsapp):
    ours = our_message(whatsapp, provider_id="", status="failed")
    status = our_status("wamid.OTHER", "read", "7d1f3c9e-0000-4000-8000-000000000000")
    deliver(client, whatsapp, wa_callback(wa_value(statuses=[status])))
    assert InboundEvent.objects.get().status == "processed"
    ours.refresh_from_db()
    assert (ours.provider_id, ours.status) == ("", "failed")


def test_a_status_for_a_message_parley_did_not_send_is_processed_and_ignored(client, whatsapp):
    status = {"id": "wamid.ELSEWHERE", "status": "read", "timestamp": "1763832700", "recipient_id": CUSTOMER_WA_ID}
    deliver(client, whatsapp, wa_callback(wa_value(statuses=[status])))
    assert InboundEvent.objects.get().status == "processed"


# -- routing -----------------------------------------------------------------------------------------------


def test_a_callback_for_another_number_of_the_same_app_is_stored_on_that_channel(client, whatsapp, support, fake):
    second = meta_channel(
        "whatsapp-cloud", team=support, graph=fake.base_url, phone_number_id="200000000000002", name="WhatsApp 2"
    )
    payload = wa_callback(
        wa_value(contacts=[wa_contact()], messages=[wa_message("wamid.ONE", body="to the first")]),
        wa_value(
            phone_number_id="200000000000002",
            contacts=[wa_contact()],
            messages=[wa_message("wamid.TWO", body="to the second")],
        ),
    )
    deliver(client, whatsapp, payload)
    assert Message.objects.get(provider_id="wamid.ONE").channel == whatsapp
    assert Message.objects.get(provider_id="wamid.TWO").channel == second


def test_a_callback_for_a_number_no_channel_of_this_app_has_is_recorded_and_fails_visibly(
    client, whatsapp, support, fake
):
    meta_channel(
        "whatsapp-cloud",
        team=support,
        graph=fake.base_url,
        phone_number_id="300000000000003",
        app_secret="another-app",
        name="Other app",
    )
    payload = wa_callback(
        wa_value(
            phone_number_id="300000000000003",
            contacts=[wa_contact()],
            messages=[wa_message("wamid.LOST", body="hello?")],
        )
    )
    deliver(client, whatsapp, payload)
    event = InboundEvent.objects.get()
    assert event.channel == whatsapp
    assert event.status == "failed"
    assert "no channel of this Meta app has phone_number_id 300000000000003" in event.error
    assert not Message.objects.exists()


def test_a_template_status_update_is_recorded_on_the_channel(client, whatsapp):
    whatsapp.state = {
        "meta": {
            "templates": [
                {"name": "order_update", "language": "en_US", "status": "APPROVED", "usable": True, "body": "Hi"}
            ]
        }
    }
    whatsapp.save()
    update = {
        "event": "PAUSED",
        "message_template_id": 9000,
        "message_template_name": "order_update",
        "message_template_language": "en_US",
        "reason": "LOW_QUALITY",
    }
    deliver(client, whatsapp, wa_callback(update, field_name="message_template_status_update"))
    whatsapp.refresh_from_db()
    assert whatsapp.state["meta"]["templates"][0]["status"] == "PAUSED"
    assert whatsapp.state["meta"]["template_events"][-1]["reason"] == "LOW_QUALITY"
    assert InboundEvent.objects.get().status == "processed"


def test_callbacks_keep_no_copy_of_the_signature_but_a_hash_of_the_whole_callback(client, whatsapp):
    body = fixture_bytes("whatsapp_text.json")
    post_callback(client, whatsapp, body)
    event = InboundEvent.objects.get()
    import hashlib

    assert event.headers["callback_sha256"] == hashlib.sha256(body).hexdigest()
    assert json.loads(bytes(event.body))["message"]["id"] == TEXT_WAMID
    assert APP_SECRET not in json.dumps(event.headers)
