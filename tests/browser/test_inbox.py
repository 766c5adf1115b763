"""The operator's inbox in real Chromium, against a real Daphne and a real Celery worker."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from connectors import simulator
from inbox.models import Conversation, Operator
from inbox.services import inbound
from inbox.transport import InboundMessage
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")


def customer_writes(text: str, address: str = "+15005550123", name: str = "Zoe Tan") -> None:
    response = simulator.customer_says(medium="sms", address=address, text=text, name=name)
    assert response.status_code < 300


def test_an_operator_answers_a_customer_live_and_the_reply_is_delivered(stack, page, alice):
    log_in(page, stack.base_url, "alice", PASSWORD)

    customer_writes("Where is my order #77?")
    row = page.locator("#conversation-list .row", has_text="Zoe Tan")
    expect(row).to_be_visible()
    row.locator(".row-link").click()
    expect(page.locator("#thread .msg", has_text="Where is my order #77?")).to_be_visible()

    page.keyboard.press("r")
    expect(page.locator("[data-composer-text]")).to_be_focused()
    page.keyboard.type("It ships today.")
    page.keyboard.press("Control+Enter")

    sent = page.locator("#thread .msg.dir-out", has_text="It ships today.")
    expect(sent).to_have_count(1)
    expect(sent.locator(".msg-status")).to_have_attribute("data-status", re.compile("sent|delivered|read"))
    outbox = wait_for(lambda: simulator.outbox(to="+15005550123"))
    assert [m["text"] for m in outbox] == ["It ships today."]

    # The customer writes again: it appears in the open thread without a reload.
    customer_writes("Thanks!")
    expect(page.locator("#thread .msg.dir-in", has_text="Thanks!")).to_be_visible()


def test_two_operators_see_each_others_assignment_within_a_second(stack, new_page, alice, support, sms):
    carol = Operator.objects.create_user("carol", "carol@example.test", PASSWORD, display_name="Carol")
    carol.teams.add(support)
    # Manual assignment is the subject here: no free capacity, so automatic routing stays out of it.
    Operator.objects.filter(pk__in=[alice.pk, carol.pk]).update(capacity=0)
    conversation = inbound.receive_message(
        channel=sms,
        inbound=simulator_inbound("Can someone call me?"),
    ).conversation
    alice_page = log_in(new_page(), stack.base_url, "alice", PASSWORD)
    carol_page = log_in(new_page(), stack.base_url, "carol", PASSWORD)
    for page in (alice_page, carol_page):
        page.locator(f"#row-{conversation.pk} .row-link").click()
        expect(page.locator(f"#thread-header-{conversation.pk}")).to_be_visible()

    started = time.monotonic()
    alice_page.get_by_role("button", name="Assign to me").click()
    expect(carol_page.locator(f"#thread-header-{conversation.pk} [data-field=assignee]")).to_contain_text(
        "Alice", timeout=1000
    )
    assert time.monotonic() - started < 1.0
    expect(carol_page.locator(f"#row-{conversation.pk}")).to_contain_text("Alice")

    carol_page.get_by_role("button", name="Resolve").click()
    expect(alice_page.locator(f"#thread-header-{conversation.pk} [data-field=status]")).to_contain_text(
        "Resolved", timeout=1000
    )
    expect(alice_page.locator("#thread .activity", has_text="Carol resolved this conversation")).to_be_visible()
    assert Conversation.objects.get(pk=conversation.pk).status == Conversation.Status.RESOLVED


def test_the_page_shows_it_is_offline_then_reconnects_and_catches_up(stack, web, page, alice):
    customer_writes("First question", address="+15005550999", name="Omar Ali")
    conversation = wait_for(lambda: Conversation.objects.filter(customer__name="Omar Ali").first())
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.locator(f"#row-{conversation.pk} .row-link").click()
    expect(page.locator("#thread .msg", has_text="First question")).to_be_visible()

    web.stop()
    expect(page.locator("#offline-banner")).to_be_visible()
    customer_writes("Hello? Anyone there?", address="+15005550999")
    customer_writes("Another customer", address="+15005550888", name="Nina Berg")
    wait_for(lambda: Conversation.objects.filter(customer__name="Nina Berg").exists())

    web.start()
    expect(page.locator("#offline-banner")).to_be_hidden(timeout=20_000)
    expect(page.locator("#thread .msg", has_text="Hello? Anyone there?")).to_be_visible()
    expect(page.locator("#conversation-list .row", has_text="Nina Berg")).to_be_visible()
    # And it is live again.
    customer_writes("Still waiting", address="+15005550999")
    expect(page.locator("#thread .msg", has_text="Still waiting")).to_be_visible()


def simulator_inbound(text: str):
    from inbox.transport import InboundMessage

    return InboundMessage(provider_id=f"b-{time.monotonic_ns()}", address="+15005550777", text=text, name="Ivy Park")


def test_a_draft_survives_switching_conversations_and_is_forgotten_once_sent(stack, page, alice, sms):
    first = inbound.receive_message(channel=sms, inbound=simulator_inbound("Is it in stock?")).conversation
    second = inbound.receive_message(
        channel=sms,
        inbound=InboundMessage(provider_id=f"d-{time.monotonic_ns()}", address="+15005550778", text="Hi", name="Max"),
    ).conversation
    log_in(page, stack.base_url, "alice", PASSWORD)
    box = page.locator("[data-composer-text]")

    page.locator(f"#row-{first.pk} .row-link").click()
    expect(page.locator("#thread")).to_have_attribute("data-conversation", str(first.pk))
    box.fill("Half a thought")
    page.locator(f"#row-{second.pk} .row-link").click()
    expect(page.locator("#thread")).to_have_attribute("data-conversation", str(second.pk))
    expect(box).to_have_value("")
    page.locator(f"#row-{first.pk} .row-link").click()
    expect(box).to_have_value("Half a thought")

    box.press("Control+Enter")
    expect(page.locator("#thread .msg.dir-out", has_text="Half a thought")).to_have_count(1)
    expect(box).to_be_focused()  # the next answer can be typed at once
    page.locator(f"#row-{second.pk} .row-link").click()
    expect(page.locator("#thread")).to_have_attribute("data-conversation", str(second.pk))
    page.locator(f"#row-{first.pk} .row-link").click()
    expect(page.locator("#thread .msg.dir-out", has_text="Half a thought")).to_have_count(1)
    expect(box).to_have_value("")  # sent text does not come back to be sent twice
    page.reload()
    expect(page.locator("#thread .msg.dir-out", has_text="Half a thought")).to_have_count(1)
    expect(box).to_have_value("")


def test_a_problem_can_be_dismissed(stack, page, alice, sms):
    conversation = inbound.receive_message(channel=sms, inbound=simulator_inbound("Hello?")).conversation
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.locator(f"#row-{conversation.pk} .row-link").click()
    page.get_by_role("button", name="Send").click()  # nothing written
    problem = page.locator("#thread .problem")
    expect(problem).to_be_visible()
    problem.get_by_role("button", name="Dismiss").click()
    expect(problem).to_have_count(0)


def test_on_a_narrow_screen_the_thread_replaces_the_list_and_back_returns_to_it(stack, new_page, alice, sms):
    conversation = inbound.receive_message(channel=sms, inbound=simulator_inbound("From my phone")).conversation
    page = log_in(new_page({"width": 390, "height": 800}), stack.base_url, "alice", PASSWORD)
    row = page.locator(f"#row-{conversation.pk} .row-link")
    row.click()
    page.evaluate("window.__samePage = true")  # gone if the browser loads a page
    expect(page.locator("#thread .msg", has_text="From my phone")).to_be_visible()
    expect(page.locator("#conversation-list")).to_be_hidden()

    page.get_by_role("link", name="Conversations").click()
    expect(page.locator("#conversation-list")).to_be_visible()
    expect(page.locator("#thread")).to_be_hidden()
    expect(row).to_be_focused()
    assert page.evaluate("window.__samePage") is True  # the list is shown again, not loaded

    # A live change redraws the list: the operator stays on it, not taken into the thread again.
    customer_writes("Someone else writes", address="+15005550198", name="Omar Haddad")
    expect(page.locator("#conversation-list .row", has_text="Omar Haddad")).to_be_visible()
    expect(page.locator("#thread")).to_be_hidden()
    expect(row).to_be_focused()


def test_a_focused_row_keeps_the_focus_when_a_live_change_redraws_the_list(stack, page, alice, sms):
    Operator.objects.filter(pk=alice.pk).update(capacity=0)  # no routing: one change, the new customer
    conversation = inbound.receive_message(channel=sms, inbound=simulator_inbound("First")).conversation
    log_in(page, stack.base_url, "alice", PASSWORD)
    row = page.locator(f"#row-{conversation.pk} .row-link")
    row.focus()
    page.evaluate(f"document.getElementById('row-{conversation.pk}').dataset.drawn = 'before'")

    customer_writes("Someone else writes", address="+15005550199", name="Omar Haddad")
    expect(page.locator("#conversation-list .row", has_text="Omar Haddad")).to_be_visible()
    expect(page.locator(f"#row-{conversation.pk}[data-drawn]")).to_have_count(0)  # the row was redrawn
    expect(row).to_be_focused()
