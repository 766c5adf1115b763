"""Saved replies in the reply box, in real Chromium against a real Daphne and a real Celery worker."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from connectors import simulator
from inbox.models import SavedReply
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")


def test_a_slash_in_the_empty_reply_box_picks_a_saved_reply_filled_in_and_it_is_sent(stack, page, alice, support):
    # "Address change" comes first with no query: the pick must be the one the typed query found.
    SavedReply.objects.create(title="Address change", text="Send us the new address.", team=support)
    SavedReply.objects.create(title="Greeting", text="Hi {customer_first_name}, how can I help?")
    SavedReply.objects.create(title="Refund policy", text="Refunds take 5 days.", team=support)
    log_in(page, stack.base_url, "alice", PASSWORD)
    response = simulator.customer_says(medium="sms", address="+15005550123", text="Hello?", name="Zoe Tan")
    assert response.status_code < 300
    page.locator("#conversation-list .row", has_text="Zoe Tan").locator(".row-link").click()
    expect(page.locator("#thread .msg", has_text="Hello?")).to_be_visible()

    box = page.locator("[data-composer-text]")
    box.click()
    page.keyboard.type("/gree")
    search = page.get_by_role("combobox", name="Search saved replies")
    expect(search).to_be_focused()
    expect(search).to_have_value("gree")
    expect(page.get_by_role("option", name=re.compile("Greeting"))).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Enter")

    expect(box).to_have_value("Hi Zoe, how can I help?")
    expect(box).to_be_focused()
    expect(page.locator("[data-saved-picker]")).to_be_hidden()
    assert not page.locator("#thread .msg.dir-out").count(), "nothing is sent by picking"

    page.keyboard.press("Control+Enter")
    expect(page.locator("#thread .msg.dir-out", has_text="Hi Zoe, how can I help?")).to_have_count(1)
    outbox = wait_for(lambda: simulator.outbox(to="+15005550123"))
    assert [m["text"] for m in outbox] == ["Hi Zoe, how can I help?"]
