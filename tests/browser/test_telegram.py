"""A Telegram customer in the operator's browser: the stand-in posts a photo and a text to the real
Daphne, they appear live in the open thread, and the operator's reply reaches the stand-in once."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from inbox.services import channels
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for
from tests.fakes.telegram import TOKEN, photo_update, running, text_update

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def fake():
    with running() as server:
        yield server


def test_a_telegram_photo_and_text_arrive_live_and_the_reply_reaches_telegram_once(stack, page, fake, support, alice):
    channels.create_channel(
        kind="telegram",
        name="Telegram",
        team=support,
        channel_settings={"bot_token": TOKEN, "api_base_url": fake.base_url, "public_base_url": stack.base_url},
    )
    log_in(page, stack.base_url, "alice", PASSWORD)
    first = text_update(fake, "Hello, my order #1001 arrived broken")
    assert fake.deliver(first).status_code == 200
    row = page.locator("#conversation-list .row", has_text="Alice Customer")
    expect(row).to_be_visible()
    row.locator(".row-link").click()
    expect(page.locator("#thread .msg.dir-in", has_text="arrived broken")).to_be_visible()

    # With the thread open, a photo with a caption arrives live, with the picture.
    fake.add_file("AgACAgQAAxkBAAIBKmZlarge", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, path="photos/file_7.jpg")
    assert fake.deliver(photo_update(fake, "AgACAgQAAxkBAAIBKmZlarge", caption="The box")).status_code == 200
    photo = page.locator("#thread .msg.dir-in", has_text="The box")
    expect(photo).to_be_visible()
    expect(photo.locator(".attachments img")).to_have_count(1)
    expect(photo.locator(".badge.medium-telegram")).to_have_text("Telegram")

    # The customer corrects their first message: the thread shows the new text, marked edited.
    edit = text_update(
        fake,
        "Hello, my order #1002 arrived broken",
        message_id=first["message"]["message_id"],
        edited=True,
        edit_date=first["message"]["date"] + 20,
    )
    assert fake.deliver(edit).status_code == 200
    edited = page.locator("#thread .msg.dir-in", has_text="#1002 arrived broken")
    expect(edited).to_be_visible()
    expect(edited.locator("[data-edited]")).to_be_visible()
    expect(page.locator("#thread .msg.dir-in", has_text="#1001")).to_have_count(0)

    page.locator("[data-composer-text]").fill("Sorry about that, a new one ships today.")
    page.keyboard.press("Control+Enter")
    sent = page.locator("#thread .msg.dir-out", has_text="a new one ships today")
    expect(sent).to_have_count(1)
    expect(sent.locator(".msg-status")).to_have_attribute("data-status", re.compile("sent"))
    wait_for(lambda: fake.delivered())
    assert [c.params["text"] for c in fake.delivered()] == ["Sorry about that, a new one ships today."]
