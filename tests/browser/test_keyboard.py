"""The inbox's keyboard shortcuts (static/keyboard.js) in real Chromium, against a real Daphne."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from inbox.models import Conversation, Operator
from inbox.services import inbound as inbound_services
from inbox.transport import InboundMessage
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")


def conversation_with(sms, address: str, name: str, text: str) -> Conversation:
    inbound = InboundMessage(provider_id=f"k-{time.monotonic_ns()}", address=address, text=text, name=name)
    return inbound_services.receive_message(channel=sms, inbound=inbound).conversation


def test_j_and_k_move_through_the_list_a_assigns_e_resolves_and_letters_typed_in_a_box_stay_text(
    stack, page, alice, sms
):
    # No free capacity: automatic routing stays out of it, "a" is the only assignment.
    Operator.objects.filter(pk=alice.pk).update(capacity=0)
    conversation_with(sms, "+15005550101", "Ana Ruiz", "First question")
    conversation_with(sms, "+15005550102", "Ben Okafor", "Second question")
    log_in(page, stack.base_url, "alice", PASSWORD)
    rows = page.locator("#conversation-list .row")
    expect(rows).to_have_count(2)
    first, second = (int(rows.nth(i).get_attribute("data-conversation")) for i in (0, 1))

    page.keyboard.press("j")  # nothing open yet: the first row
    expect(page.locator("#thread")).to_have_attribute("data-conversation", str(first))
    expect(rows.nth(0)).to_have_attribute("aria-current", "true")
    page.keyboard.press("j")
    expect(page.locator("#thread")).to_have_attribute("data-conversation", str(second))
    expect(rows.nth(1)).to_have_attribute("aria-current", "true")
    page.keyboard.press("j")  # the last row stays the last
    page.keyboard.press("k")
    expect(page.locator("#thread")).to_have_attribute("data-conversation", str(first))

    page.keyboard.press("a")
    expect(page.locator(f"#thread-header-{first} [data-field=assignee]")).to_contain_text("Alice")
    assert wait_for(lambda: Conversation.objects.get(pk=first).assignee_id == alice.pk)
    expect(page.get_by_role("button", name="Assign to me")).to_be_hidden()

    # In the reply box letters are text: "e" does not resolve, "j" does not move.
    page.keyboard.press("r")
    box = page.locator("[data-composer-text]")
    expect(box).to_be_focused()
    page.keyboard.type("je")
    expect(box).to_have_value("je")
    expect(page.locator("#thread")).to_have_attribute("data-conversation", str(first))
    page.keyboard.press("Escape")
    expect(box).not_to_be_focused()

    page.keyboard.press("e")
    expect(page.locator(f"#thread-header-{first} [data-field=status]")).to_contain_text("Resolved")
    assert wait_for(lambda: Conversation.objects.get(pk=first).status == Conversation.Status.RESOLVED)
    assert Conversation.objects.get(pk=second).status == Conversation.Status.OPEN


def test_n_writes_a_private_note_slash_filters_and_question_mark_lists_the_shortcuts(stack, page, alice, sms):
    conversation = conversation_with(sms, "+15005550103", "Cleo Park", "Hello")
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.locator(f"#row-{conversation.pk} .row-link").click()
    expect(page.locator("#thread")).to_be_visible()

    page.keyboard.press("n")
    composer = page.locator("[data-composer]")
    expect(composer).to_have_class("composer mode-note")
    expect(composer.get_by_label("Private note")).to_be_checked()
    expect(page.locator("[data-composer-text]")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    expect(composer.get_by_label("Reply", exact=True)).to_be_checked()
    expect(composer).to_have_class("composer")
    page.keyboard.press("Escape")

    page.keyboard.press("/")
    expect(page.locator("#filter-team")).to_be_focused()
    page.locator("main").focus()

    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_hidden()
    page.keyboard.press("?")
    expect(help_dialog).to_be_visible()
    help_dialog.get_by_role("button", name="Close").click()
    expect(help_dialog).to_be_hidden()
