"""Twilio in the operator's browser: WhatsApp templates from the reply box, against the real stack
and the Twilio stand-in (which posts its signed status callbacks back to the real Daphne)."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from inbox.models import Message
from inbox.services import conversations, inbound
from inbox.transport import InboundMessage
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for
from tests.fakes.twilio import running, twilio_channel

pytestmark = pytest.mark.usefixtures("transactional_db")

ORDER = "HX00000000000000000000000000000001"


@pytest.fixture
def fake():
    with running() as server:
        server.contents = {ORDER: "Hello {{1}}, your order {{2}} has shipped."}
        yield server


def screenshot(page, name: str) -> None:
    """Keep a picture of what the operator saw when PARLEY_SCREENSHOTS names a folder."""
    folder = os.environ.get("PARLEY_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def test_outside_the_whatsapp_window_the_operator_sends_an_approved_template(stack, page, fake, support, sms, alice):
    line = twilio_channel(
        "twilio-whatsapp",
        team=support,
        api_base_url=fake.base_url,
        public_base_url=stack.base_url,
        from_number="+14155238886",
        templates=json.dumps(
            [
                {
                    "content_sid": ORDER,
                    "name": "Order shipped",
                    "body": "Hello {{1}}, your order {{2}} has shipped.",
                    "variables": {"1": "customer.first_name", "2": {"label": "Order number"}},
                }
            ]
        ),
    )
    fake.callbacks = ["sent", "delivered", "read"]
    message = inbound.receive_message(
        channel=line,
        inbound=InboundMessage(
            provider_id="SM00000000000000000000000000000003",
            address="whatsapp:+15005550006",
            text="Is my order on its way?",
            name="Zoe Tan",
        ),
    )
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(hours=26))
    # The same customer also texted by SMS: the reply box offers it as another way to reach them.
    inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="sms-1", address="+15005550006", text="Hello?")
    )
    Message.objects.filter(provider_id="sms-1").update(created_at=timezone.now() - timedelta(hours=26))
    conversations.assign_conversation(conversation=message.conversation, operator=alice, by=None)

    log_in(page, stack.base_url, "alice", PASSWORD)
    page.goto(f"{stack.base_url}/c/{message.conversation_id}/")
    composer = page.locator("[data-composer]")
    # The customer last wrote on SMS: pick WhatsApp, where the window has closed.
    composer.locator("select[name=channel]").select_option(str(line.pk))
    expect(composer.locator("[data-refusal]")).to_contain_text("24 hours")
    expect(composer.locator("[data-send]")).to_be_disabled()
    expect(composer.locator("[data-reply-elsewhere]")).to_contain_text("SMS")
    template = composer.locator("details.template", has_text="Order shipped")
    expect(template).to_be_visible()
    expect(template.get_by_label("Variable 1")).to_have_value("Zoe")
    template.get_by_label("Order number").fill("A-1001")
    screenshot(page, "template-picker")
    template.get_by_role("button", name="Send template “Order shipped”").click()

    sent = page.locator("#thread .msg.dir-out", has_text="Hello Zoe, your order A-1001 has shipped.")
    expect(sent).to_have_count(1)
    expect(sent.locator(".msg-status")).to_have_attribute("data-status", "read", timeout=20_000)
    screenshot(page, "template-sent")
    [out] = fake.sent
    assert out.get("ContentSid") == ORDER
    assert json.loads(out.get("ContentVariables")) == {"1": "Zoe", "2": "A-1001"}
    assert "Body" not in out.params
    # The reply box is fresh (still refusing free-form text) and the thread has one message out.
    expect(page.locator("[data-composer] [data-refusal]")).to_contain_text("24 hours")
    assert wait_for(lambda: Message.objects.filter(direction="out", status="read").count() == 1)


def test_a_missing_template_variable_is_explained_and_nothing_is_sent(stack, page, fake, support, alice):
    line = twilio_channel(
        "twilio-whatsapp",
        team=support,
        api_base_url=fake.base_url,
        public_base_url=stack.base_url,
        templates=json.dumps([{"content_sid": ORDER, "name": "Order shipped", "body": "Order {{1}} shipped."}]),
    )
    message = inbound.receive_message(
        channel=line,
        inbound=InboundMessage(provider_id="SMwa1", address="whatsapp:+15005550006", text="Hi", name="Zoe Tan"),
    )
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(hours=30))
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.goto(f"{stack.base_url}/c/{message.conversation_id}/")
    page.get_by_role("button", name=re.compile("Send template")).click()
    expect(page.locator("#thread-errors .problem")).to_contain_text("Fill in Variable 1")
    assert not Message.objects.filter(direction="out").exists()
    assert not fake.sent


def test_an_operator_sends_a_picture_from_the_reply_box_and_twilio_fetches_it(stack, page, fake, support, alice):
    import httpx

    line = twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url, public_base_url=stack.base_url)
    message = inbound.receive_message(
        channel=line,
        inbound=InboundMessage(provider_id="SMpic1", address="+15005550006", text="Which label?", name="Zoe Tan"),
    )
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.goto(f"{stack.base_url}/c/{message.conversation_id}/")
    composer = page.locator("[data-composer]")
    composer.locator("[data-attachments]").set_input_files(
        {"name": "label.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\nlabel"}
    )
    composer.locator("[data-composer-text]").fill("This one")
    screenshot(page, "attachment-chosen")
    composer.locator("[data-send]").click()
    sent = page.locator("#thread .msg.dir-out", has_text="This one")
    expect(sent.locator(".attachments img[alt='label.png']")).to_be_visible()
    expect(sent.locator(".msg-status")).to_have_attribute("data-status", re.compile("sent|delivered"), timeout=20_000)
    screenshot(page, "attachment-sent")
    [out] = fake.sent
    [media_url] = out.params["MediaUrl"]
    # Twilio fetches the picture from the signed link, without a session.
    fetched = httpx.get(media_url, timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == b"\x89PNG\r\n\x1a\nlabel"
