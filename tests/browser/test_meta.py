"""WhatsApp Cloud API in the operator's browser, against the real stack and the Graph API stand-in
(which posts its signed callbacks to the real Daphne): a customer's picture lands live in the open
thread; a day later a free-form reply is refused with the reason and an approved template goes out
instead, its statuses coming back."""

from __future__ import annotations

import json
import struct
import zlib
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from inbox.models import Message
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for
from tests.fakes.meta import meta_channel, running, wa_callback, wa_contact, wa_message, wa_text_callback, wa_value

pytestmark = pytest.mark.usefixtures("transactional_db")


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def fake():
    with running() as server:
        server.templates = [
            {"name": "order_update", "language": "en_US", "body": "Hello {{1}}, your order {{2}} has shipped."}
        ]
        yield server


def test_a_whatsapp_picture_lands_live_and_outside_the_window_a_template_goes_out(stack, page, fake, support, alice):
    line = meta_channel(
        "whatsapp-cloud",
        team=support,
        graph=fake.base_url,
        public_base_url=stack.base_url,
        templates=json.dumps(
            [
                {
                    "name": "order_update",
                    "language": "en_US",
                    "body": "Hello {{1}}, your order {{2}} has shipped.",
                    "variables": {"1": "customer.first_name", "2": {"label": "Order number"}},
                }
            ]
        ),
    )
    fake.webhook_url = f"{stack.base_url}/hooks/{line.key}/webhook/"
    fake.callbacks = ["sent", "delivered", "read"]
    assert (
        fake.post_callback(
            fake.webhook_url, wa_text_callback("wamid.FIRST", "My order arrived broken", name="Alice Customer")
        ).status_code
        == 200
    )
    first = wait_for(lambda: Message.objects.filter(provider_id="wamid.FIRST").first())

    log_in(page, stack.base_url, "alice", PASSWORD)
    page.goto(f"{stack.base_url}/c/{first.conversation_id}/")
    expect(page.locator("#thread .msg.dir-in", has_text="My order arrived broken")).to_have_count(1)

    # The customer sends a picture: it lands in the open thread without a reload.
    fake.add_media("777", tiny_png(), "image/png")
    picture = wa_message(
        "wamid.PICTURE", "image", image={"id": "777", "mime_type": "image/png", "caption": "See the box"}
    )
    assert (
        fake.post_callback(
            fake.webhook_url, wa_callback(wa_value(contacts=[wa_contact()], messages=[picture]))
        ).status_code
        == 200
    )
    landed = page.locator("#thread .msg.dir-in", has_text="See the box")
    expect(landed).to_have_count(1, timeout=20_000)
    expect(landed.locator("img")).to_have_count(1)

    # A day passes: WhatsApp allows only an approved template now.
    Message.objects.filter(direction="in").update(created_at=timezone.now() - timedelta(hours=25))
    page.reload()
    composer = page.locator("[data-composer]")
    expect(composer.locator("[data-refusal]")).to_contain_text("more than 24 hours ago")
    expect(composer.locator("[data-send]")).to_be_disabled()
    template = composer.locator("details.template", has_text="order_update (en_US)")
    expect(template.get_by_label("Variable 1")).to_have_value("Alice")
    template.get_by_label("Order number").fill("A-1001")
    template.get_by_role("button", name="Send template “order_update (en_US)”").click()

    sent = page.locator("#thread .msg.dir-out", has_text="Hello Alice, your order A-1001 has shipped.")
    expect(sent).to_have_count(1)
    expect(sent.locator(".msg-status")).to_have_attribute("data-status", "read", timeout=30_000)
    [out] = fake.sent
    assert out["type"] == "template"
    assert out["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "Alice"},
        {"type": "text", "text": "A-1001"},
    ]
    assert "text" not in out
