"""The manager's tools in real Chromium against a real Daphne: labels and macros from the keyboard."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from desk import services as desk_services
from inbox.models import Conversation, Message, Operator
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


def test_two_operators_see_each_other_in_a_thread_and_sending_on_top_asks_first(stack, new_page, alice, sms, support):
    carol = Operator.objects.create_user("carol", "carol@example.test", PASSWORD, display_name="Carol")
    carol.teams.add(support)
    Operator.objects.filter(pk__in=[alice.pk, carol.pk]).update(capacity=0)  # routing stays out of it
    conversation = conversation_with(sms, "+15005550132", "Eli Shore", "Is my order on its way?")
    alice_page, carol_page = new_page(), new_page()
    for page, username in ((alice_page, "alice"), (carol_page, "carol")):
        log_in(page, stack.base_url, username, PASSWORD)
        page.locator(f"#row-{conversation.pk} .row-link").click()
        expect(page.locator(f"#thread-header-{conversation.pk}")).to_be_visible()

    expect(alice_page.locator(f"#viewers-{conversation.pk}")).to_have_text("Also here now: Carol")
    expect(carol_page.locator(f"#viewers-{conversation.pk}")).to_have_text("Also here now: Alice")

    # Carol answers first; Alice, who opened the thread before, is asked and shown Carol's reply.
    carol_page.locator("[data-composer-text]").fill("Carol: it left this morning.")
    carol_page.locator("[data-send]").click()
    assert wait_for(lambda: Message.objects.filter(text="Carol: it left this morning.").exists())
    alice_page.locator("[data-composer-text]").fill("Alice: it ships today.")
    alice_page.locator("[data-send]").click()
    collision = alice_page.locator("[data-collision]")
    expect(collision).to_contain_text("Carol: it left this morning.")
    assert not Message.objects.filter(text="Alice: it ships today.").exists()
    collision.get_by_role("button", name="Send anyway").click()
    assert wait_for(lambda: Message.objects.filter(text="Alice: it ships today.", author=alice).exists())

    carol_page.close()
    expect(alice_page.locator(f"#viewers-{conversation.pk}")).to_have_text("")


def test_the_sla_clock_shows_in_the_thread_and_the_row_turns_red_live_then_clears_on_reply(
    stack, page, admin, alice, sms, support
):
    from datetime import timedelta

    from django.utils import timezone

    from desk.models import ConversationSla, SlaPolicy

    desk_services.save_policy(
        policy=SlaPolicy(name="Fast", team=support, first_response_minutes=30, business_hours=False), by=admin
    )
    time.sleep(desk_services.POLICIES_SECONDS + 0.1)  # the web process's copy of the policies is fresh
    Operator.objects.filter(pk=alice.pk).update(capacity=0)  # routing stays out of it
    conversation = conversation_with(sms, "+15005550133", "Fay Lin", "Anyone there?")
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.locator(f"#row-{conversation.pk} .row-link").click()
    first = page.locator(f"#thread-sla-{conversation.pk} [data-sla-target=first_response]")
    expect(first).to_have_attribute("data-sla-state", "running")
    expect(first).to_contain_text("due in")

    past = timezone.now() - timedelta(minutes=1)
    ConversationSla.objects.filter(conversation=conversation).update(first_response_due=past, next_due=past)
    assert len(desk_services.sweep_breaches()) == 1
    expect(page.locator(f"#row-{conversation.pk} .sla-breached")).to_be_visible()
    expect(first).to_have_attribute("data-sla-state", "missed")

    page.locator("[data-composer-text]").fill("Sorry for the wait: here now.")
    page.locator("[data-send]").click()
    assert wait_for(lambda: ConversationSla.objects.get(conversation=conversation).first_response_at is not None)
    expect(page.locator(f"#row-{conversation.pk} .sla-badge")).to_have_count(0)
    expect(first).to_have_attribute("data-sla-state", "missed")  # answered late stays missed
