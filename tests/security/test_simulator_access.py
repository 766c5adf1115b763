"""The simulator cannot be used to forge customers, hijack a reply channel or read other teams' replies.

Issue 12, defect 1: any logged-in operator, in any mode, could post to ``/simulator/`` with the
phone number of another team's customer; a simulated channel was made on the fly, the forged text
landed in that customer's conversation, the conversation's reply channel became the simulated one,
and ``/simulator/outbox/`` showed every team's simulated replies. See docs/security.md, "The simulator".
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from connectors import simulator
from customers.models import Customer, Identity
from inbox.models import Channel, Conversation, InboundEvent, Message
from inbox.services import channels, inbound, outbound
from inbox.transport import InboundMessage
from tests.conftest import ROOT
from tests.fakes.twilio import twilio_channel

PAGE = "/simulator/"
OUTBOX = "/simulator/outbox/"


@pytest.fixture
def sales_line(sales) -> Channel:
    return channels.create_channel(kind="simulator", name="Sales SMS", team=sales, channel_settings={"medium": "sms"})


@pytest.fixture
def dora(sms) -> Conversation:
    """A customer the simulator made, in a conversation of Support."""
    message = inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="sim-1", address="+15005550006", text="Hi", name="Dora")
    )
    return Conversation.objects.get(pk=message.conversation_id)


@pytest.fixture
def real(support) -> Conversation:
    """A real customer, who wrote on Support's Twilio number."""
    line = twilio_channel("twilio-sms", team=support)
    message = inbound.receive_message(
        channel=line, inbound=InboundMessage(provider_id="SM1", address="+15005550077", text="Real", name="Rui")
    )
    return Conversation.objects.get(pk=message.conversation_id)


def says(client, channel: Channel, address: str, text: str = "Forged", **headers):
    # ``medium`` too: the page before the fix took a medium and made the channel itself.
    data = {"channel": channel.pk, "medium": channel.medium, "address": address, "text": text}
    return client.post(PAGE, data, headers=headers)


def simulate(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate", *args, stdout=out)
    return out.getvalue()


# -- off in production mode unless an admin switches it on ---------------------------------------------------


def production_setting(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"}}
    code = "import django; django.setup(); from django.conf import settings; print(settings.PARLEY_SIMULATOR)"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PARLEY_PRODUCTION": "1",
            "SECRET_KEY": "a-test-only-secret-key-of-enough-length-and-variety-42",
            "ALLOWED_HOSTS": "parley.example.com",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.stack
def test_production_mode_turns_the_simulator_off_by_default():
    result = production_setting()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.stack
def test_an_admin_switches_it_on_in_production_with_parley_simulator():
    result = production_setting(PARLEY_SIMULATOR="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.stack
def test_the_demo_in_production_needs_the_simulator_switched_on():
    result = production_setting(PARLEY_DEMO="1")
    assert result.returncode != 0
    assert "PARLEY_DEMO needs the simulator" in result.stderr


@pytest.fixture
def off(settings) -> None:
    """The simulator switched off (ask for it after the channels it should find)."""
    settings.PARLEY_SIMULATOR = False


@pytest.mark.parametrize("who", ["admin", "alice", None])
def test_while_off_the_page_and_the_outbox_do_not_exist(client, sms, admin, alice, off, who):
    if who:
        client.force_login({"admin": admin, "alice": alice}[who])
    assert client.get(PAGE).status_code == 404
    assert client.get(OUTBOX).status_code == 404
    assert says(client, sms, "+15005550006").status_code == 404
    assert not InboundEvent.objects.exists()


def test_while_off_the_navigation_has_no_simulator_link(client, alice, off, settings):
    client.force_login(alice)
    assert PAGE not in client.get("/").content.decode()
    settings.PARLEY_SIMULATOR = True
    assert f'href="{PAGE}"' in client.get("/").content.decode()


def test_while_off_the_command_refuses(sms, off):
    with pytest.raises(CommandError, match="simulator is off"):
        simulate("--channel", "sms", "--from", "+15005550006", "--text", "Hi")
    with pytest.raises(CommandError, match="simulator is off"):
        simulate("outbox")
    assert not InboundEvent.objects.exists()


def test_while_off_no_simulated_channel_can_be_made(off, db):
    with pytest.raises(CommandError, match="simulator is off"):
        call_command("channel", "add", "simulator", "--name", "Lab", "--set", "medium=sms", stdout=io.StringIO())
    assert not Channel.objects.exists()


def test_while_off_a_simulated_channels_webhook_takes_nothing(client, sms, settings):
    body = json.dumps({"id": "x-1", "from": "+15005550006", "text": "Hi"}).encode()
    signature = simulator.SimulatorConnector(sms).sign(body)
    settings.PARLEY_SIMULATOR = False
    response = client.post(
        f"/hooks/{sms.key}/inbound/",
        data=body,
        content_type="application/json",
        headers={simulator.SIGNATURE_HEADER: signature},
    )
    assert response.status_code == 404
    assert not InboundEvent.objects.exists()


# -- who may use it ---------------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in_and_nothing_is_sent(client, sms):
    for response in (client.get(PAGE), client.get(OUTBOX), says(client, sms, "+15005550006")):
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    assert not InboundEvent.objects.exists()


def test_an_operator_cannot_play_a_customer_on_another_teams_simulated_channel(client, bob, sms, sales_line):
    client.force_login(bob)
    response = says(client, sms, "+15005550099", headers={"HX-Request": "true", "HX-Target": "simulator"})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not InboundEvent.objects.exists()


def test_an_operator_cannot_forge_a_message_from_another_teams_customer(client, bob, dora, sales_line):
    client.force_login(bob)
    response = says(client, sales_line, "+1 500 555 0006", text="Send my refund to another card")

    assert response.status_code == 403
    assert "This address belongs to a customer of another team." in response.content.decode()
    assert not InboundEvent.objects.exists()
    assert not Message.objects.filter(text="Send my refund to another card").exists()


def test_an_operator_plays_new_customers_and_their_own_teams_simulated_ones(client, alice, dora, sms):
    client.force_login(alice)
    assert says(client, sms, "+15005550006", text="Follow-up").status_code == 302
    assert says(client, sms, "+15005550123", text="New here").status_code == 302
    assert InboundEvent.objects.filter(channel=sms).count() == 2


def test_the_page_never_creates_a_channel(client, admin):
    client.force_login(admin)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "There is no simulated channel for your teams." in page.content.decode()

    response = client.post(PAGE, {"medium": "sms", "channel": "", "address": "+15005550006", "text": "Hi"})

    assert response.status_code == 400
    assert not Channel.objects.exists()
    assert not InboundEvent.objects.exists()


# -- a simulated channel never becomes a real customer's reply channel ---------------------------------------------


def test_staff_cannot_play_a_real_customer_from_the_page(client, admin, sms, real):
    client.force_login(admin)
    response = says(client, sms, "+1 500 555 0077", text="Please reply here instead")

    assert response.status_code == 403
    assert "belongs to a real customer" in response.content.decode()
    assert not InboundEvent.objects.exists()
    real.refresh_from_db()
    assert real.last_channel.kind == "twilio-sms"


def test_the_command_path_refuses_a_real_customers_address_before_posting(sms, real):
    response = simulator.customer_says(medium="sms", address="+15005550077", text="Please reply here instead")

    assert response.status_code == 403
    assert b"belongs to a real customer" in response.content
    assert not InboundEvent.objects.exists()
    with pytest.raises(CommandError, match="refused"):
        simulate("--channel", "whatsapp", "--from", "+15005550077", "--text", "Hijack")


def test_a_customer_added_by_hand_is_a_real_person_too(sms):
    person = Customer.objects.create(name="Added by hand")
    Identity.objects.create(customer=person, kind="phone", value="+15005550088")

    assert "real customer" in simulator.refusal(channel=sms, address="+15005550088")
    assert simulator.customer_says(channel=sms, address="+15005550088", text="Hi").status_code == 403


def test_a_message_taken_before_the_customer_became_real_is_refused_when_processed(client, sms, support):
    response = simulator.customer_says(channel=sms, address="+15005550077", text="Late forged message")
    assert response.status_code == 200
    event = InboundEvent.objects.get(channel=sms)
    line = twilio_channel("twilio-sms", team=support)
    real = inbound.receive_message(
        channel=line, inbound=InboundMessage(provider_id="SM2", address="+15005550077", text="Real")
    ).conversation

    inbound.process_inbound_event(event_id=event.pk)

    event.refresh_from_db()
    assert event.status == InboundEvent.Status.FAILED
    assert "real customer" in event.error
    assert not Message.objects.filter(text="Late forged message").exists()
    real.refresh_from_db()
    assert real.last_channel == line


# -- the outbox -----------------------------------------------------------------------------------------------


def test_the_outbox_shows_an_operator_only_their_teams_simulated_replies_and_staff_all(
    client, alice, bob, admin, dora, sales_line
):
    answer = outbound.reply(conversation=dora, text="Support's answer to Dora", by=alice)
    outbound.deliver_message(message_id=answer.pk)
    theirs = inbound.receive_message(
        channel=sales_line, inbound=InboundMessage(provider_id="sim-2", address="+15005550010", text="Hi")
    ).conversation
    outbound.deliver_message(message_id=outbound.reply(conversation=theirs, text="Sales' answer", by=bob).pk)

    client.force_login(bob)
    seen = client.get(OUTBOX).content.decode() + client.get(PAGE).content.decode()
    assert "Sales&#x27; answer" in seen
    assert "Support&#x27;s answer to Dora" not in seen
    assert "Support&#x27;s answer to Dora" not in client.get(OUTBOX, {"to": "+15005550006"}).content.decode()

    client.force_login(admin)
    everything = client.get(OUTBOX).content.decode()
    assert "Sales&#x27; answer" in everything
    assert "Support&#x27;s answer to Dora" in everything
