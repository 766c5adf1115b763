"""The reply box follows the customer live: with the thread open, the customer writes on another
channel and the next reply goes out there; a channel the operator picked by hand stays picked."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from connectors import simulator
from inbox.models import Message
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")

PHONE = "+15005550123"


def writes(medium: str, text: str) -> None:
    assert simulator.customer_says(medium=medium, address=PHONE, text=text, name="Zoe Tan").status_code < 300


def open_thread(page, stack, first: str):
    log_in(page, stack.base_url, "alice", PASSWORD)
    row = page.locator("#conversation-list .row", has_text="Zoe Tan")
    expect(row).to_be_visible()
    row.locator(".row-link").click()
    expect(page.locator("#thread .msg.dir-in", has_text=first)).to_be_visible()


def reply(page, text: str) -> Message:
    page.locator("[data-composer-text]").fill(text)
    page.keyboard.press("Control+Enter")
    expect(page.locator("#thread .msg.dir-out", has_text=text)).to_have_count(1)
    return wait_for(lambda: Message.objects.filter(direction="out", text=text).select_related("channel").first())


def test_the_reply_goes_out_on_the_channel_of_the_customers_latest_message_as_it_arrives(
    stack, page, sms, whatsapp, alice
):
    writes("sms", "Hi, is my order shipped?")
    open_thread(page, stack, "Hi, is my order shipped?")
    picker = page.locator("[data-composer] select[name=channel]")
    expect(picker).to_have_value(str(sms.pk))
    page.locator("[data-composer-text]").fill("Let me check")  # a draft survives the switch
    writes("whatsapp", "Writing from WhatsApp now")
    expect(page.locator("#thread .msg.dir-in", has_text="Writing from WhatsApp now")).to_be_visible()
    expect(picker).to_have_value(str(whatsapp.pk))
    expect(page.locator("[data-composer-text]")).to_have_value("Let me check")
    sent = reply(page, "Found it: it ships today")
    assert sent.channel_id == whatsapp.pk


def test_a_channel_the_operator_picked_stays_picked_when_the_customer_writes_elsewhere(
    stack, page, sms, whatsapp, alice
):
    writes("whatsapp", "Hello from WhatsApp")
    open_thread(page, stack, "Hello from WhatsApp")
    writes("sms", "And from SMS")  # the customer has an address on both now
    expect(page.locator("#thread .msg.dir-in", has_text="And from SMS")).to_be_visible()
    picker = page.locator("[data-composer] select[name=channel]")
    expect(picker).to_have_value(str(sms.pk))
    picker.select_option(str(whatsapp.pk))
    expect(page.locator("[data-composer] [data-picked-note]")).to_be_visible()
    writes("sms", "Another SMS")
    expect(page.locator("#thread .msg.dir-in", has_text="Another SMS")).to_be_visible()
    page.wait_for_timeout(500)
    expect(picker).to_have_value(str(whatsapp.pk))
    sent = reply(page, "Answering on WhatsApp as chosen")
    assert sent.channel_id == whatsapp.pk
    # It stays picked after sending too.
    expect(page.locator("[data-composer] select[name=channel]")).to_have_value(str(whatsapp.pk))
    writes("sms", "One more SMS")
    expect(page.locator("#thread .msg.dir-in", has_text="One more SMS")).to_be_visible()
    page.wait_for_timeout(500)
    expect(page.locator("[data-composer] select[name=channel]")).to_have_value(str(whatsapp.pk))
