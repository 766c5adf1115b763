"""The website chat widget in real Chromium, embedded in a page served from ANOTHER origin.

A small static server in the test plays the business's own site (with a strict Content-Security-
Policy); the widget's script comes from the real stack (Daphne + a Celery worker running the bot).
"""

from __future__ import annotations

import re
from datetime import UTC
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from bot.encoders import TfidfEncoder
from bot.models import Article, Calibration, ExampleQuestion
from connectors.webchat import protocol
from customers.models import Identity
from inbox.models import Conversation, Message
from inbox.services import channels as services
from inbox.services import outbound
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for
from tests.fakes.http import LocalServer

pytestmark = pytest.mark.usefixtures("transactional_db")

BOT_TURN = 30_000
AXE = Path(__file__).parent / "fixtures" / "axe-4.14.1.min.js"
SECRET = "shop-identity-secret"


class ShopSite(LocalServer):
    """The business's site: ``/<channel key>/<page>`` embeds the widget as the snippet says."""

    parley = ""

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = handler.path.strip("/").split("/")
        key = parts[0] if parts else ""
        page = parts[1] if len(parts) > 1 else "index"
        ws = self.parley.replace("http://", "ws://")
        csp = (
            f"default-src 'none'; script-src {self.parley}; connect-src {self.parley} {ws}; "
            f"img-src {self.parley}; style-src 'none'"
        )
        body = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop · {page}</title></head>'
            f'<body><main><h1>Shop page {page}</h1><p><a href="/{key}/other">Another page</a></p></main>'
            f'<script src="{self.parley}/webchat/parley-webchat.{protocol.WIDGET_VERSION}.js" '
            f'data-parley-channel="{key}" async crossorigin="anonymous"></script></body></html>'
        ).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Security-Policy", csp)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def shop(stack):
    site = ShopSite()
    site.parley = stack.base_url
    site.start()
    yield site
    site.stop()


@pytest.fixture
def chat(shop, support):
    """The shop's website chat, with the bot on, a small knowledge base and a calibration."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}:webchat:*"):
        client.delete(key)
    channel = services.create_channel(
        kind="webchat",
        name="Shop chat",
        team=support,
        channel_settings={"allowed_origins": shop.base_url, "identity_secret": SECRET},
        bot_enabled=True,
    )
    article = Article.objects.create(title="Delivery", answer="Parcels arrive in 2-3 working days.")
    ExampleQuestion.objects.bulk_create(
        [
            ExampleQuestion(article=article, text=text)
            for text in ["where is my parcel", "when will my order be delivered", "track my delivery"]
        ]
    )
    other = Article.objects.create(title="Passwords", answer="Use 'Forgot password' on the sign-in page.")
    ExampleQuestion.objects.bulk_create(
        [ExampleQuestion(article=other, text=text) for text in ["i forgot my password", "reset my password"]]
    )
    Calibration.objects.create(
        encoder=TfidfEncoder().name, language="*", threshold=0.2, margin=0.0, computed_at=timezone.now()
    )
    return channel


def visit(new_page, shop, chat, page: str = "index", viewport=None):
    visitor = new_page(viewport)
    visitor.goto(f"{shop.base_url}/{chat.key}/{page}")
    return visitor


def open_widget(visitor, name: str = "Open chat"):
    visitor.get_by_role("button", name=re.compile(name)).click()
    expect(visitor.get_by_role("textbox", name=re.compile("Message|پیام"))).to_be_focused()


def write(visitor, text: str) -> None:
    box = visitor.get_by_role("textbox", name=re.compile("Message|پیام"))
    box.fill(text)
    box.press("Enter")


def bubbles(visitor):
    return visitor.locator("#parley-webchat .log .m")


def serious_violations(page) -> list[dict]:
    """axe-core's serious and critical findings in the widget (its shadow root included)."""
    page.evaluate(AXE.read_text())  # through the devtools protocol: the host's CSP does not apply
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document.querySelector('#parley-webchat'), {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def test_a_visitor_talks_to_the_bot_then_to_alice_who_answers_live(stack, new_page, shop, chat, alice):
    operator = new_page()
    log_in(operator, stack.base_url, "alice", PASSWORD)

    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    write(visitor, "where is my parcel")
    expect(bubbles(visitor).filter(has_text="where is my parcel")).to_have_count(1)
    expect(bubbles(visitor).filter(has_text="Parcels arrive in 2-3 working days.")).to_be_visible(timeout=BOT_TURN)

    write(visitor, "I want to talk to a person")
    conversation = wait_for(
        lambda: Conversation.objects.filter(last_channel=chat, handler=Conversation.Handler.HUMAN).first(),
        timeout=BOT_TURN / 1000,
    )
    row = operator.locator(f"#row-{conversation.pk}")
    expect(row).to_be_visible()
    row.locator(".row-link").click()
    expect(operator.locator("#thread .msg", has_text="I want to talk to a person")).to_be_visible()

    operator.keyboard.press("r")
    operator.keyboard.type("Hi, Alice here. Let me check your parcel.")
    operator.keyboard.press("Control+Enter")

    answer = bubbles(visitor).filter(has_text="Hi, Alice here. Let me check your parcel.")
    expect(answer).to_have_count(1)
    expect(answer.locator(".who")).to_have_text("Alice")
    # The widget is open and visible: the operator sees the reply was read.
    sent = operator.locator("#thread .msg.dir-out", has_text="Let me check your parcel.")
    expect(sent.locator(".msg-status")).to_have_attribute("data-status", "read", timeout=15_000)

    # The visitor writes; Alice sees it live.
    write(visitor, "Thank you!")
    expect(operator.locator("#thread .msg.dir-in", has_text="Thank you!")).to_be_visible()

    # A reload and another page of the site keep the history, each message once.
    everything = ["where is my parcel", "Parcels arrive", "I want to talk to a person", "Alice here", "Thank you!"]
    for again in (lambda: visitor.reload(), lambda: visitor.get_by_role("link", name="Another page").click()):
        again()
        for text in everything:
            expect(bubbles(visitor).filter(has_text=text)).to_have_count(1)
        expect(visitor.get_by_role("textbox", name="Message")).to_be_visible()  # still open
    assert Message.objects.filter(channel=chat, direction="in").count() == 3


def test_without_the_bot_the_operator_answers_and_the_visitor_sees_it(stack, new_page, shop, chat, alice):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    write(visitor, "Do you ship to Norway?")
    message = wait_for(lambda: Message.objects.filter(channel=chat, text="Do you ship to Norway?").first())
    outbound.reply(conversation=message.conversation, text="Yes, within 5 days.", by=alice)
    expect(bubbles(visitor).filter(has_text="Yes, within 5 days.")).to_have_count(1)


def test_messages_typed_offline_arrive_once_and_in_order_when_back_online(stack, new_page, shop, chat):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    write(visitor, "Before going offline")
    wait_for(lambda: Message.objects.filter(channel=chat, text="Before going offline").exists())

    visitor.context.set_offline(True)
    expect(visitor.locator("#parley-webchat .notice")).to_contain_text("offline")
    write(visitor, "First, typed offline")
    write(visitor, "Second, typed offline")
    expect(bubbles(visitor).filter(has_text="typed offline").locator(".st")).to_have_text(["Sending…", "Sending…"])
    visitor.wait_for_timeout(500)
    assert not Message.objects.filter(channel=chat, text__contains="typed offline").exists()

    visitor.context.set_offline(False)
    wait_for(lambda: Message.objects.filter(channel=chat, text__contains="typed offline").count() == 2)
    expect(bubbles(visitor).filter(has_text="typed offline").locator(".st")).to_have_text(["", ""])
    visitor.wait_for_timeout(1000)  # anything sent twice would be stored by now
    texts = list(
        Message.objects.filter(channel=chat, direction="in").order_by("created_at", "pk").values_list("text", flat=True)
    )
    assert texts == ["Before going offline", "First, typed offline", "Second, typed offline"]


def test_with_websockets_blocked_the_widget_falls_back_to_http_end_to_end(stack, new_page, shop, chat, alice):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    visitor = new_page()
    # A proxy that lets the upgrade through and cuts it at once (one that refuses it fails earlier).
    visitor.route_web_socket(re.compile(r"/ws/webchat/"), lambda ws: ws.close())
    visitor.goto(f"{shop.base_url}/{chat.key}/index")
    open_widget(visitor)
    write(visitor, "Hello over plain HTTP")
    message = wait_for(lambda: Message.objects.filter(channel=chat, text="Hello over plain HTTP").first())
    expect(bubbles(visitor).filter(has_text="Hello over plain HTTP").locator(".st")).to_have_text("")
    outbound.reply(conversation=message.conversation, text="Long polling works.", by=alice)
    expect(bubbles(visitor).filter(has_text="Long polling works.")).to_have_count(1)
    reply = Message.objects.get(text="Long polling works.")
    wait_for(lambda: Message.objects.get(pk=reply.pk).status == Message.Status.READ)
    assert visitor.evaluate("sessionStorage.length") >= 1  # the tab remembers to poll


def test_identify_links_with_a_correct_user_hash_and_not_with_a_forged_one(stack, new_page, shop, chat):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    write(visitor, "Hi, it's me")
    wait_for(lambda: Message.objects.filter(channel=chat, text="Hi, it's me").exists())
    forged = visitor.evaluate("Parley.identify({email: 'mallory@customer.test', user_hash: '00'.repeat(32)})")
    assert forged == {"verified": False}
    assert not Identity.objects.filter(kind="email", value="mallory@customer.test").exists()
    good = protocol.user_hash(SECRET, "dora@customer.test")
    verified = visitor.evaluate(f"Parley.identify({{email: 'dora@customer.test', name: 'Dora', user_hash: '{good}'}})")
    assert verified == {"verified": True}
    message = Message.objects.select_related("customer").get(text="Hi, it's me")
    assert Identity.objects.filter(customer=message.customer, kind="email", value="dora@customer.test").exists()
    assert message.customer.name == "Dora"


def test_a_persian_visitor_gets_the_widget_right_to_left_in_persian(stack, browser, shop, chat):
    context = browser.new_context(locale="fa-IR", viewport={"width": 1280, "height": 800})
    visitor = context.new_page()
    visitor.goto(f"{shop.base_url}/{chat.key}/index")
    launcher = visitor.get_by_role("button", name="باز کردن گفتگو")
    expect(launcher).to_be_visible()
    launcher.click()
    root = visitor.locator("#parley-webchat .root")
    expect(root).to_have_attribute("dir", "rtl")
    expect(root).to_have_attribute("lang", "fa")
    box = visitor.get_by_role("textbox", name="پیام")
    expect(box).to_have_attribute("placeholder", "پیامی بنویسید…")
    # Right to left: the launcher sits on the left edge, the composer's send button on its left.
    assert launcher.bounding_box()["x"] < 100 or visitor.viewport_size["width"] < 600
    send = visitor.get_by_role("button", name="ارسال")
    assert send.bounding_box()["x"] < box.bounding_box()["x"]
    assert serious_violations(visitor) == []
    context.close()


def test_axe_finds_no_serious_accessibility_violation_in_the_open_widget(stack, new_page, shop, chat, alice):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    write(visitor, "Is https://shop.example.test/orders/1 shipped?")
    message = wait_for(lambda: Message.objects.filter(channel=chat).first())
    outbound.reply(conversation=message.conversation, text="Yes, see https://example.test/track", by=alice)
    expect(bubbles(visitor).filter(has_text="see https://example.test/track")).to_have_count(1)
    link = bubbles(visitor).get_by_role("link", name="https://example.test/track")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert serious_violations(visitor) == []


def test_on_a_phone_the_open_widget_fills_the_screen(stack, new_page, shop, chat):
    visitor = visit(new_page, shop, chat, viewport={"width": 390, "height": 780})
    open_widget(visitor)
    panel = visitor.locator("#parley-webchat .panel")
    box = panel.bounding_box()
    assert (round(box["width"]), round(box["height"])) == (390, 780)


def test_the_bots_did_you_mean_is_two_buttons_and_a_click_answers_it(stack, new_page, shop, chat):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    write(visitor, "my parcel")
    message = wait_for(lambda: Message.objects.filter(channel=chat, text="my parcel").first())
    outbound.reply(
        conversation=message.conversation,
        text="Did you mean:\n1. Delivery\n2. Returns\nReply 1 or 2, or tell me more.",
        by=None,
        sender=Message.Sender.BOT,
        metadata={"bot": {"action": "clarify", "offered": [1, 2]}},
    )
    choices = visitor.get_by_role("group", name="Choose an answer")
    expect(choices.get_by_role("button")).to_have_text(["Delivery", "Returns"])
    choices.get_by_role("button", name="Delivery").click()
    wait_for(lambda: Message.objects.filter(channel=chat, direction="in", text="1").exists())
    expect(visitor.get_by_role("group", name="Choose an answer")).to_have_count(0)


def test_the_satisfaction_survey_is_five_faces_and_a_click_records_the_score(stack, new_page, shop, chat, alice):
    from desk import csat
    from desk.models import CsatResponse, TeamSettings
    from inbox.services import conversations

    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    TeamSettings.objects.create(team=chat.team, csat_enabled=True)
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    write(visitor, "where is my parcel")
    message = wait_for(lambda: Message.objects.filter(channel=chat, text="where is my parcel").first())
    alice.teams.add(chat.team)
    outbound.reply(conversation=message.conversation, text="It ships today.", by=alice)
    conversations.resolve_conversation(conversation=message.conversation, by=alice)
    csat.ask(conversation_id=message.conversation_id)  # as the worker's task does on "resolved"

    faces = visitor.get_by_role("group", name="Choose an answer")
    expect(faces.get_by_role("button")).to_have_text(["😀 5", "🙂 4", "😐 3", "🙁 2", "😞 1"])
    faces.get_by_role("button", name="🙂 4").click()
    wait_for(lambda: CsatResponse.objects.filter(score=4).exists())
    message.conversation.refresh_from_db()
    assert message.conversation.status == "resolved"


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2a3a2b60000000049454e44ae426082"
)


def test_a_visitor_sends_an_image_and_sees_its_preview(stack, new_page, shop, chat):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    visitor.locator("#parley-webchat input[type=file]").set_input_files(
        {"name": "photo.png", "mimeType": "image/png", "buffer": PNG}
    )
    preview = bubbles(visitor).get_by_role("img", name="photo.png")
    expect(preview).to_be_visible()
    assert preview.evaluate("img => img.naturalWidth") == 1  # served to the other origin under its CSP
    stored = wait_for(lambda: Message.objects.filter(channel=chat, direction="in").first())
    assert [a.filename for a in stored.attachments.all()] == ["photo.png"]


def test_two_tabs_of_the_site_are_one_visitor_and_show_each_others_messages_live(stack, new_page, shop, chat):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    first = visit(new_page, shop, chat)
    open_widget(first)
    write(first, "Written in the first tab")
    expect(bubbles(first).filter(has_text="Written in the first tab").locator(".st")).to_have_text("")
    second = first.context.new_page()
    second.goto(f"{shop.base_url}/{chat.key}/other")
    expect(bubbles(second).filter(has_text="Written in the first tab")).to_have_count(1)  # the widget stays open
    write(second, "Written in the second tab")
    expect(bubbles(first).filter(has_text="Written in the second tab")).to_have_count(1)
    assert Message.objects.filter(channel=chat, direction="in").values("customer").distinct().count() == 1


def test_a_reply_to_a_closed_widget_shows_an_unread_badge_and_html_stays_text(stack, new_page, shop, chat, alice):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    write(visitor, "Hello")
    message = wait_for(lambda: Message.objects.filter(channel=chat, text="Hello").first())
    visitor.get_by_role("button", name="Close chat").click()
    outbound.reply(
        conversation=message.conversation,
        text="<img src=x onerror=alert(1)> javascript:alert(1) see https://example.test/a",
        by=alice,
    )
    launcher = visitor.get_by_role("button", name=re.compile(r"Open chat, 1 unread"))
    expect(launcher).to_be_visible()
    expect(visitor.locator("#parley-webchat .badge")).to_have_text("1")
    launcher.click()
    expect(visitor.locator("#parley-webchat .badge")).to_be_hidden()
    answer = bubbles(visitor).filter(has_text="<img src=x onerror=alert(1)>")
    expect(answer).to_have_count(1)  # shown as text, not as an element
    assert answer.locator("img").count() == 0
    assert answer.get_by_role("link").evaluate_all("links => links.map(a => a.href)") == ["https://example.test/a"]
    wait_for(lambda: Message.objects.get(text__startswith="<img").status == Message.Status.READ)


# -- replies by email, business hours, hand-off, offline files ---------------------------------------


def mailbox_of(team):
    """The team's email channel (never reached here: the widget only needs to know one exists)."""
    return services.create_channel(
        kind="email",
        name="Shop mail",
        team=team,
        channel_settings={"address": "support@shop.example.test", "smtp_host": "127.0.0.1", "smtp_port": "9"},
    )


def test_outside_business_hours_the_widget_says_when_people_are_back_and_takes_an_email(
    stack, new_page, shop, chat, support
):
    from tests.connectors.webchat.test_hours_and_handoff import closed_until_the_day_after_tomorrow

    mailbox_of(support)
    back = closed_until_the_day_after_tomorrow(support)
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    notice = visitor.locator("#parley-webchat .notice")
    expect(notice).to_contain_text("We are away until")
    # When people are back, in the visitor's language and time zone (the browser's: UTC here).
    expect(notice).to_contain_text(back.astimezone(UTC).strftime("%A, %B %-d"))
    email = visitor.get_by_role("textbox", name="Email")
    email.fill("ann@customer.test")
    visitor.get_by_role("button", name="Save").click()
    expect(notice).to_contain_text("We will answer at ann@customer.test")
    write(visitor, "where is my parcel")  # the bot still answers
    expect(bubbles(visitor).filter(has_text="Parcels arrive in 2-3 working days.")).to_be_visible(timeout=BOT_TURN)
    customer = wait_for(lambda: Identity.objects.filter(kind="webchat").first()).customer
    customer.refresh_from_db()
    assert customer.attributes["email"] == "ann@customer.test"


def test_a_required_pre_chat_email_comes_before_the_first_message(stack, new_page, shop, chat, support):
    mailbox_of(support)
    chat.settings = {**chat.settings, "prechat_email": "required"}
    chat.save(update_fields=["settings"])
    visitor = visit(new_page, shop, chat)
    visitor.get_by_role("button", name=re.compile("Open chat")).click()
    expect(visitor.get_by_role("textbox", name="Email")).to_be_visible()
    expect(visitor.locator("#parley-webchat form.composer")).to_be_hidden()
    expect(visitor.get_by_role("button", name="Skip")).to_be_hidden()  # required: no skipping
    visitor.get_by_role("textbox", name="Email").fill("ann@customer.test")
    visitor.get_by_role("button", name="Save").click()
    write(visitor, "Hello")
    wait_for(lambda: Message.objects.filter(channel=chat, text="Hello").exists())


def test_the_link_of_a_reply_by_email_opens_the_chat(stack, new_page, shop, chat):
    visitor = new_page()
    visitor.goto(f"{shop.base_url}/{chat.key}/orders#parley-chat")
    expect(visitor.get_by_role("textbox", name="Message")).to_be_visible()


def test_the_visitor_sees_alice_join_then_her_message(stack, new_page, shop, chat, alice):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    write(visitor, "Anyone there?")
    stored = wait_for(lambda: Message.objects.filter(channel=chat, direction="in").first())
    outbound.reply(conversation=stored.conversation, text="Yes, Alice here.", by=alice)
    joined = visitor.locator("#parley-webchat .log .sys")
    expect(joined).to_have_text("Alice joined the conversation")
    answer = bubbles(visitor).filter(has_text="Yes, Alice here.")
    expect(answer.locator(".who")).to_have_text("Alice")
    # In the log the line comes before her message.
    order = visitor.locator("#parley-webchat .log > div").evaluate_all("nodes => nodes.map(n => n.className)")
    assert order[-2:] == ["sys", "m"]


def test_a_file_picked_while_offline_is_sent_once_when_back_online(stack, new_page, shop, chat):
    chat.bot_enabled = False
    chat.save(update_fields=["bot_enabled"])
    visitor = visit(new_page, shop, chat)
    open_widget(visitor)
    write(visitor, "Here comes a photo")
    wait_for(lambda: Message.objects.filter(channel=chat, text="Here comes a photo").exists())
    visitor.context.set_offline(True)
    expect(visitor.locator("#parley-webchat .notice")).to_contain_text("offline")
    visitor.locator("#parley-webchat input[type=file]").set_input_files(
        {"name": "photo.png", "mimeType": "image/png", "buffer": PNG}
    )
    expect(bubbles(visitor).filter(has_text="photo.png").locator(".st")).to_have_text("Sending…")
    expect(visitor.locator("#parley-webchat .notice")).to_contain_text("will be sent when you are back")
    assert not Message.objects.filter(channel=chat, attachments__isnull=False).exists()
    visitor.context.set_offline(False)
    expect(bubbles(visitor).get_by_role("img", name="photo.png")).to_be_visible()
    wait_for(lambda: Message.objects.filter(channel=chat, attachments__filename="photo.png").exists())
    assert Message.objects.filter(channel=chat, attachments__filename="photo.png").count() == 1
    expect(bubbles(visitor).filter(has_text="📎 photo.png")).to_have_count(0)  # the pending one gave way
    expect(bubbles(visitor).get_by_role("img", name="photo.png")).to_have_count(1)
