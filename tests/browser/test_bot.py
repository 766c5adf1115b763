"""The bot and the operator in real Chromium: live answers, a live hand-off, desktop notifications.

Against the real stack (Daphne + a Celery worker running the bot on the TF-IDF encoder).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from bot.encoders import TfidfEncoder
from bot.models import Article, Calibration, ExampleQuestion
from connectors import simulator
from inbox.models import Conversation, Operator
from inbox.services import channels, inbound
from inbox.transport import InboundMessage
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")

SHOTS = Path(settings.VAR_DIR) / "screenshots"
# A worker process's first bot turn loads the encoder and indexes the knowledge base (each of the
# worker's two processes does it once): on a busy machine that takes seconds.
BOT_TURN = 30_000

# Records the page's desktop notifications (the browser's API, standing in for the OS) as if the
# operator had allowed them.
NOTIFICATION_SPY = """
window.__notifications = [];
window.Notification = class {
  constructor(title, options) {
    this.title = title; this.body = (options || {}).body || ""; this.onclick = null;
    window.__notifications.push(this);
  }
  close() {}
  static get permission() { return "granted"; }
  static requestPermission() { return Promise.resolve("granted"); }
};
"""


@pytest.fixture
def bot_line(support):
    """The simulator's SMS line with the bot on, a small knowledge base and a calibration."""
    channel = channels.create_channel(
        kind="simulator",
        name="Simulated SMS",
        team=support,
        channel_settings={"medium": "sms"},
        bot_enabled=True,
    )
    for title, answer, examples in [
        (
            "Passwords",
            "Use 'Forgot password' on the sign-in page.",
            ["i forgot my password", "reset my password", "how do i change my password"],
        ),
        (
            "Delivery",
            "Parcels arrive in 2-3 working days.",
            ["where is my parcel", "when will my order be delivered", "track my delivery"],
        ),
    ]:
        article = Article.objects.create(title=title, answer=answer)
        ExampleQuestion.objects.bulk_create([ExampleQuestion(article=article, text=t) for t in examples])
    Calibration.objects.create(
        encoder=TfidfEncoder().name, language="*", threshold=0.2, margin=0.0, computed_at=timezone.now()
    )
    return channel


def customer_writes(text: str, address: str = "+15005550161", name: str = "Mia Wong") -> None:
    response = simulator.customer_says(medium="sms", address=address, text=text, name=name)
    assert response.status_code < 300


def test_the_bot_answers_live_then_hands_off_to_the_operator_on_screen(stack, page, alice, bot_line):
    log_in(page, stack.base_url, "alice", PASSWORD)

    customer_writes("i forgot my password")
    row = page.locator("#conversation-list .row", has_text="Mia Wong")
    expect(row).to_be_visible()
    expect(row.locator(".badge.bot")).to_be_visible()
    row.locator(".row-link").click()
    thread = page.locator("#thread")
    expect(thread.locator(".msg.sender-bot", has_text="Use 'Forgot password'")).to_be_visible(timeout=BOT_TURN)

    # With the thread open, the bot's next answer arrives without a reload, with its confidence.
    customer_writes("where is my parcel")
    answer = thread.locator(".msg.sender-bot", has_text="Parcels arrive in 2-3 working days.")
    expect(answer).to_be_visible(timeout=BOT_TURN)
    expect(answer.locator(".bot-meta")).to_contain_text("Confidence")
    expect(answer.locator(".bot-meta")).to_contain_text("Delivery")

    # The customer asks for a person: the hand-off lands on Alice's screen, assigned to her.
    customer_writes("can I talk to a human please")
    conversation = wait_for(lambda: Conversation.objects.filter(customer__name="Mia Wong").first())
    header = page.locator(f"#thread-header-{conversation.pk}")
    expect(header.locator("[data-field=assignee]")).to_contain_text("Assigned to Alice", timeout=BOT_TURN)
    expect(header.locator(".badge.bot")).to_have_count(0)
    summary = thread.locator("[data-bot-summary]")
    expect(summary).to_contain_text("The bot handed this conversation to the team: the customer asked for a person.")
    expect(summary).to_contain_text("can I talk to a human please")
    expect(summary).to_contain_text("Tried: Delivery, Passwords")
    expect(thread.locator(".msg.sender-bot .bot-reason", has_text="the customer asked for a person")).to_be_visible()
    expect(row).to_contain_text("Alice")  # the list too, without a reload
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "bot-hand-off.png"), full_page=True)

    conversation.refresh_from_db()
    assert (conversation.handler, conversation.assignee_id) == (Conversation.Handler.HUMAN, alice.pk)


def test_give_back_to_the_bot_and_it_answers_the_next_message(stack, page, alice, bot_line):
    customer_writes("can I talk to a human please", address="+15005550162", name="Leo Park")
    conversation = wait_for(
        lambda: Conversation.objects.filter(customer__name="Leo Park", handler="human").first(), timeout=45
    )
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.locator(f"#row-{conversation.pk} .row-link").click()
    header = page.locator(f"#thread-header-{conversation.pk}")

    header.get_by_role("button", name="Give back to the bot").click()

    expect(header.locator(".badge.bot")).to_have_text("Bot is answering")
    expect(page.locator("#thread .activity", has_text="Alice gave this conversation back to the bot")).to_be_visible()
    customer_writes("where is my parcel", address="+15005550162")
    expect(page.locator("#thread .msg.sender-bot", has_text="Parcels arrive in 2-3 working days.")).to_be_visible(
        timeout=BOT_TURN
    )
    conversation.refresh_from_db()
    assert conversation.handler == Conversation.Handler.BOT


def test_an_operator_answer_becomes_an_example_question_in_one_click(stack, page, alice, bot_line):
    customer_writes("can I talk to a human please", address="+15005550163", name="Ada Kim")
    conversation = wait_for(
        lambda: Conversation.objects.filter(customer__name="Ada Kim", handler="human").first(), timeout=45
    )
    customer_writes("my password does not work", address="+15005550163")
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.locator(f"#row-{conversation.pk} .row-link").click()
    page.locator("[data-composer-text]").fill("Use 'Forgot password' on the sign-in page.")
    page.keyboard.press("Control+Enter")
    mine = page.locator("#thread .msg.sender-operator", has_text="Use 'Forgot password'")
    expect(mine).to_be_visible()

    mine.get_by_role("button", name="Make this an example question").click()

    # The first ranking in a web process builds its index of the knowledge base: give it time.
    expect(mine.locator(".example-done")).to_have_text("Example question of “Passwords”", timeout=20_000)
    page.screenshot(path=str(SHOTS / "example-question.png"), full_page=True)
    assert ExampleQuestion.objects.get(text="my password does not work").article.title == "Passwords"


def test_an_assignment_is_a_desktop_notification_that_opens_the_conversation(stack, new_page, alice, support, sms):
    carol = Operator.objects.create_user("carol", "carol@example.test", PASSWORD, display_name="Carol")
    carol.teams.add(support)
    Operator.objects.filter(pk__in=[alice.pk, carol.pk]).update(capacity=0)  # no automatic routing here
    # Stored before anyone opens the inbox (no worker in the way: this test is about the socket).
    conversation = inbound.receive_message(
        channel=sms,
        inbound=InboundMessage(
            provider_id=f"n-{time.monotonic_ns()}",
            address="+15005550171",
            text="Are you open on Sunday?",
            name="Ivy Park",
        ),
    ).conversation
    alice_page = new_page()
    alice_page.add_init_script(NOTIFICATION_SPY)
    log_in(alice_page, stack.base_url, "alice", PASSWORD)
    carol_page = log_in(new_page(), stack.base_url, "carol", PASSWORD)
    carol_page.locator(f"#row-{conversation.pk} .row-link").click()

    # A teammate gives it to Alice, who is looking at her list, not at this conversation.
    carol_page.locator(f"#assign-{conversation.pk}").select_option(str(alice.pk))

    wait_for(lambda: alice_page.evaluate("window.__notifications.length") == 1, timeout=30)
    assert alice_page.evaluate("window.__notifications[0].title") == "Assigned to you: Ivy Park"
    assert alice_page.evaluate("window.__notifications[0].body") == "Are you open on Sunday?"
    alice_page.evaluate("window.__notifications[0].onclick()")
    expect(alice_page.locator(f"#thread-header-{conversation.pk}")).to_be_visible()
    expect(alice_page.locator("#thread .msg", has_text="Are you open on Sunday?")).to_be_visible()

    # While she shows that conversation in a visible tab, being given it again needs no notification.
    carol_page.locator(f"#thread-header-{conversation.pk}").get_by_role("button", name="Unassign").click()
    expect(alice_page.locator(f"#thread-header-{conversation.pk} [data-field=assignee]")).to_have_text("Unassigned")
    carol_page.locator(f"#assign-{conversation.pk}").select_option(str(alice.pk))
    expect(alice_page.locator(f"#thread-header-{conversation.pk} [data-field=assignee]")).to_contain_text("Alice")
    time.sleep(0.5)
    assert alice_page.evaluate("window.__notifications.length") == 1
