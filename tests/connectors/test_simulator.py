"""The simulator: its webhook, the ``simulate`` command end to end, and the simulator page."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from connectors import simulator
from customers.models import Customer
from inbox.models import Conversation, InboundEvent, Message
from inbox.services import channels, inbound, outbound
from inbox.transport import InboundMessage
from tests.conftest import wait_for


def simulate(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate", *args, stdout=out)
    return out.getvalue()


# -- the command, with a real worker ----------------------------------------------------------------


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_sms_and_whatsapp_from_one_number_make_one_customer_and_one_thread(stack, sms, whatsapp, alice):
    simulate("--channel", "sms", "--from", "+1 500 555 0006", "--text", "My parcel is late", "--name", "Ana")
    wait_for(lambda: Message.objects.filter(channel=sms, direction="in").exists())
    simulate("--channel", "whatsapp", "--from", "whatsapp:+15005550006", "--text", "Here is the tracking number")
    wait_for(lambda: Message.objects.filter(channel=whatsapp, direction="in").exists())

    assert Customer.objects.count() == 1
    assert Conversation.objects.count() == 1
    conversation = Conversation.objects.get()
    assert conversation.customer.name == "Ana"
    assert conversation.last_channel == whatsapp
    assert list(conversation.messages.filter(direction="in").order_by("created_at").values_list("text", flat=True)) == [
        "My parcel is late",
        "Here is the tracking number",
    ]


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_simulate_outbox_prints_what_the_operator_sent_as_json_lines(stack, sms, alice):
    simulate("--channel", "sms", "--from", "+15005550006", "--text", "Hello?")
    message = wait_for(lambda: Message.objects.filter(direction="in").select_related("conversation").first())
    outbound.reply(conversation=message.conversation, text="Hi Ana, how can we help?", by=alice)
    wait_for(lambda: Message.objects.filter(direction="out", status="delivered").exists())

    lines = simulate("outbox", "--to", "+1 (500) 555-0006").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(row["to"], row["text"], row["medium"], row["sender"]) for row in rows] == [
        ("+15005550006", "Hi Ana, how can we help?", "sms", "operator")
    ]
    assert rows[0]["status"] == "delivered"
    assert simulate("outbox", "--to", "+15005550099") == ""


def test_the_command_refuses_a_message_without_an_address(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--from"):
        simulate("--channel", "sms", "--text", "Hi")


# -- the webhook ------------------------------------------------------------------------------------


def test_a_forged_signature_is_refused_with_403_and_nothing_is_stored(client, sms):
    body = json.dumps({"id": "forged-1", "from": "+15005550006", "text": "Transfer the money"}).encode()
    response = client.post(
        f"/hooks/{sms.key}/inbound/",
        data=body,
        content_type="application/json",
        headers={simulator.SIGNATURE_HEADER: "0" * 64},
    )
    assert response.status_code == 403
    assert not InboundEvent.objects.exists()
    unsigned = client.post(f"/hooks/{sms.key}/inbound/", data=body, content_type="application/json")
    assert unsigned.status_code == 403
    assert not InboundEvent.objects.exists()


def test_a_malformed_body_is_refused_with_400_and_nothing_is_stored(client, sms):
    body = b"{not json"
    signature = simulator.SimulatorConnector(sms).sign(body)
    response = client.post(
        f"/hooks/{sms.key}/inbound/",
        data=body,
        content_type="application/json",
        headers={simulator.SIGNATURE_HEADER: signature},
    )
    assert response.status_code == 400
    assert not InboundEvent.objects.exists()


def test_a_signed_message_is_stored_once_however_often_it_is_posted(client, sms):
    body = json.dumps({"id": "once", "from": "+15005550006", "text": "Hi"}).encode()
    headers = {simulator.SIGNATURE_HEADER: simulator.SimulatorConnector(sms).sign(body)}
    for _ in range(2):
        response = client.post(
            f"/hooks/{sms.key}/inbound/", data=body, content_type="application/json", headers=headers
        )
        assert response.status_code == 200
    assert InboundEvent.objects.count() == 1


# -- the page ----------------------------------------------------------------------------------------


@pytest.fixture
def operator_client(client, alice):
    client.force_login(alice)
    return client


def test_the_simulator_page_needs_a_login(client, db):
    response = client.get("/simulator/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.fixture
def email(support):
    return channels.create_channel(kind="simulator", name="Email", team=support, channel_settings={"medium": "email"})


def test_the_page_offers_the_simulated_channels_of_the_operators_teams(operator_client, sms, whatsapp, sales):
    channels.create_channel(kind="simulator", name="Sales SMS", team=sales, channel_settings={"medium": "sms"})
    response = operator_client.get("/simulator/")
    assert response.status_code == 200
    choices = [str(label) for _value, label in response.context["form"].fields["channel"].choices]
    assert choices == ["SMS (Support)", "WhatsApp (Support)"]
    assert 'hx-trigger="every 2s" data-poll-visible' in response.content.decode()


def test_a_message_from_the_page_takes_the_webhook_path(operator_client, sms):
    response = operator_client.post(
        "/simulator/", {"channel": sms.pk, "address": "+1 500 555 0006", "name": "Ana", "text": "Is it in stock?"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/simulator/?to=%2B1+500+555+0006"
    event = InboundEvent.objects.get(channel=sms)
    assert json.loads(bytes(event.body))["text"] == "Is it in stock?"


def test_the_outbox_offers_a_message_s_choices_as_buttons_that_tap_as_the_customer(operator_client, whatsapp, alice):
    operator_client.post("/simulator/", {"channel": whatsapp.pk, "address": "+15005550006", "text": "Hi"})
    inbound.process_inbound_event(event_id=InboundEvent.objects.get().pk)
    conversation = Message.objects.get(direction="in").conversation
    choices = [{"id": "csat:5", "title": "😀 5"}, {"id": "csat:1", "title": "😞 1"}]
    reply = outbound.reply(conversation=conversation, text="How did we do?", by=alice, metadata={"choices": choices})
    outbound.deliver_message(message_id=reply.pk)

    page = operator_client.get("/simulator/").content.decode()
    assert 'name="choice" value="csat:5"' in page
    assert ">😀 5</button>" in page

    operator_client.post(
        "/simulator/",
        {"channel": whatsapp.pk, "address": "+15005550006", "text": "😀 5", "choice": "csat:5"},
    )
    event = InboundEvent.objects.filter(endpoint="inbound").latest("pk")
    inbound.process_inbound_event(event_id=event.pk)
    tap = Message.objects.filter(direction="in").latest("pk")
    assert (tap.text, tap.metadata["choice"]) == ("😀 5", "csat:5")
    refused = operator_client.post(
        "/simulator/", {"channel": whatsapp.pk, "address": "+15005550006", "text": "x", "choice": "<b>"}
    )
    assert refused.status_code == 400


def test_an_email_from_the_page_carries_its_subject(operator_client, email):
    operator_client.post(
        "/simulator/",
        {"channel": email.pk, "address": "ana@example.com", "subject": "Order #1001", "text": "Where is it?"},
    )
    event = InboundEvent.objects.get()
    assert event.channel == email
    assert json.loads(bytes(event.body))["subject"] == "Order #1001"


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"channel": "sms", "address": "", "text": "Hi"}, "address", "This field is required."),
        ({"channel": "sms", "address": "not a number", "text": "Hi"}, "address", "A phone number"),
        ({"channel": "email", "address": "ana.example.com", "text": "Hi"}, "address", "An email address"),
        ({"channel": "sms", "address": "+15005550006", "text": ""}, "text", "This field is required."),
        ({"channel": "999999", "address": "+15005550006", "text": "Hi"}, "channel", "Select a valid choice"),
    ],
)
def test_bad_input_is_a_form_error_and_nothing_is_sent(operator_client, sms, email, data, field, error):
    data = {**data, "channel": {"sms": sms.pk, "email": email.pk}.get(data["channel"], data["channel"])}
    response = operator_client.post("/simulator/", data, headers={"HX-Request": "true", "HX-Target": "simulator"})
    assert response.status_code == 400
    body = response.content.decode()
    assert f'id="id_{field}_error"' in body
    assert error in body
    assert 'id="simulator"' in body
    assert "<html" not in body
    assert not InboundEvent.objects.exists()


def test_an_htmx_send_keeps_the_sender_and_clears_the_text(operator_client, sms, whatsapp):
    response = operator_client.post(
        "/simulator/",
        {"channel": whatsapp.pk, "address": "+15005550006", "name": "Ana", "text": "Hello"},
        headers={"HX-Request": "true", "HX-Target": "simulator"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert f'<option value="{whatsapp.pk}" selected>' in body
    assert 'name="address" value="+15005550006"' in body
    assert 'name="name" value="Ana"' in body
    assert "Hello</textarea>" not in body
    # The outbox beneath now follows this customer.
    assert 'hx-get="/simulator/outbox/?to=%2B15005550006"' in body
    assert InboundEvent.objects.count() == 1


def test_the_outbox_shows_what_was_sent_filtered_by_address(operator_client, sms, alice):
    for n, address in enumerate(["+15005550006", "+15005550010"]):
        message = inbound.receive_message(
            channel=sms, inbound=InboundMessage(provider_id=f"in-{n}", address=address, text="Hi")
        )
        reply = outbound.reply(conversation=message.conversation, text=f"Answer to {address}", by=alice)
        outbound.deliver_message(message_id=reply.pk)

    everything = operator_client.get("/simulator/outbox/").content.decode()
    assert "Answer to +15005550006" in everything
    assert "Answer to +15005550010" in everything

    response = operator_client.get("/simulator/outbox/", {"to": "+1 500 555 0006"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Answer to +15005550006" in body
    assert "Answer to +15005550010" not in body
    assert "<html" not in body
