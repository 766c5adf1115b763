"""The manager's tools in real Chromium against a real Daphne: labels and macros from the keyboard."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from desk import services as desk_services
from inbox.models import Conversation
from inbox.services import inbound as inbound_services
from inbox.transport import InboundMessage
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")


def conversation_with(sms, address: str, name: str, text: str) -> Conversation:
    inbound = InboundMessage(provider_id=f"d-{time.monotonic_ns()}", address=address, text=text, name=name)
    return inbound_services.receive_message(channel=sms, inbound=inbound).conversation


def test_l_adds_a_label_and_m_runs_a_macro_from_the_keyboard(stack, page, admin, alice, sms, support):
    refund = desk_services.create_label(name="Refund", colour="red", by=admin)
    desk_services.create_macro(
        name="Urgent", team_id=support.pk, actions=[{"action": "priority", "priority": 3}], by=admin
    )
    conversation = conversation_with(sms, "+15005550131", "Dana Wu", "Where is my refund?")
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.locator(f"#row-{conversation.pk} .row-link").click()
    header = page.locator(f"#thread-header-{conversation.pk}")
    expect(header).to_be_visible()
    page.locator("main").focus()

    page.keyboard.press("l")
    expect(page.locator("[data-label-select]")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(header.locator(".label-chip")).to_contain_text("Refund")
    assert wait_for(lambda: Conversation.objects.get(pk=conversation.pk).labels == ["Refund"])
    # The list's row shows it too, live.
    expect(page.locator(f"#row-{conversation.pk} .label-chip")).to_contain_text("Refund")

    page.locator("main").focus()
    page.keyboard.press("m")
    expect(page.locator("[data-macro-select]")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert wait_for(lambda: Conversation.objects.get(pk=conversation.pk).priority == 3)
    expect(page.locator(f"#priority-{conversation.pk}")).to_have_value("3")

    header.get_by_role("button", name=f"Remove the label {refund.name}").click()
    assert wait_for(lambda: Conversation.objects.get(pk=conversation.pk).labels == [])
    expect(header.locator(".label-chip")).to_have_count(0)
