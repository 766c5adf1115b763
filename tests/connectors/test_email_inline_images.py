"""Email in the thread: inline (cid:) images for the team only, and quoted history shown on demand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inbox.models import InboundEvent, Message
from inbox.services import channels, inbound

CORPUS = Path(__file__).parent / "fixtures" / "email"


@pytest.fixture
def mailbox(support):
    return channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={"address": "support@example.test", "smtp_host": "127.0.0.1"},
    )


def ingest(channel, name: str) -> Message:
    event, _ = inbound.record_inbound_event(
        channel=channel, endpoint="imap", dedupe_key=name, body=(CORPUS / name).read_bytes()
    )
    inbound.process_inbound_event(event_id=event.pk)
    assert InboundEvent.objects.get(pk=event.pk).status == "processed"
    return Message.objects.get(channel=channel, direction="in")


def image_sources(page: str) -> list[str]:
    body = page.split('class="msg-body"', 1)[1]
    return re.findall(r'<img[^>]*\ssrc="([^"]+)"', body)


@pytest.mark.parametrize(
    ("fixture", "content_id"),
    [
        ("outlook_inline_image.eml", "image001.png@01DC5E2A.3B4C5D60"),
        ("apple_inline_image.eml", "F00D-CAFE-0001@customer.test"),
    ],
)
def test_an_inline_image_is_shown_from_its_stored_attachment(client, mailbox, alice, fixture, content_id):
    message = ingest(mailbox, fixture)
    image = message.attachments.get(content_id=content_id)
    assert f'src="cid:{content_id}"' in message.html  # stored as sent; rewritten when shown
    client.force_login(alice)

    page = client.get(f"/c/{message.conversation_id}/").content.decode()
    served = client.get(f"/a/{image.pk}/")

    assert image_sources(page)[0] == f"/a/{image.pk}/"
    assert "cid:" not in page.split('class="msg-body"', 1)[1].split("</div>", 1)[0]
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content).startswith(b"\x89PNG")
    assert "sandbox" in served["Content-Security-Policy"]


def test_an_inline_image_is_not_listed_again_but_a_real_attachment_is(client, mailbox, alice):
    message = ingest(mailbox, "outlook_inline_image.eml")
    pdf = message.attachments.get(filename="invoice.pdf")
    client.force_login(alice)

    page = client.get(f"/c/{message.conversation_id}/").content.decode()
    listed = page.split('class="attachments"', 1)[1].split("</ul>", 1)[0]

    assert f'href="/a/{pdf.pk}/" download' in listed
    assert "image001.png" not in listed
    download = client.get(f"/a/{pdf.pk}/")
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith('attachment; filename="invoice.pdf"')


def test_attachments_are_served_only_to_operators_of_the_conversations_team(client, mailbox, bob):
    message = ingest(mailbox, "apple_inline_image.eml")
    image = message.attachments.get()

    anonymous = client.get(f"/a/{image.pk}/")
    client.force_login(bob)  # Sales only; the mailbox belongs to Support
    other_team = client.get(f"/a/{image.pk}/")

    assert anonymous.status_code == 302
    assert "/login/" in anonymous["Location"]
    assert other_team.status_code == 404


def test_quoted_history_is_folded_away_and_shown_on_demand_without_remote_images(client, mailbox, alice):
    message = ingest(mailbox, "gmail_reply.eml")
    client.force_login(alice)

    page = client.get(f"/c/{message.conversation_id}/").content.decode()

    shown = page.split('class="msg-body"', 1)[1].split("</div>", 1)[0]
    folded = page.split('<details class="msg-quoted">', 1)[1].split("</details>", 1)[0]
    assert "we shipped a replacement today" not in shown
    assert "Show quoted text" in folded
    assert "we shipped a replacement today" in folded
    assert "tracker.example.test" not in folded  # the quoted copy drops the tracking pixel too


def test_an_attachment_too_large_to_keep_is_named_in_the_thread(client, mailbox, alice, settings):
    settings.PARLEY_MAX_ATTACHMENT_BYTES = 10
    message = ingest(mailbox, "outlook_inline_image.eml")
    client.force_login(alice)

    page = client.get(f"/c/{message.conversation_id}/").content.decode()

    assert "Attachment invoice.pdf (58 bytes) was too large to keep here" in page


def test_html_mail_without_quotes_offers_no_quoted_text(client, mailbox, alice):
    message = ingest(mailbox, "outlook_inline_image.eml")
    client.force_login(alice)

    page = client.get(f"/c/{message.conversation_id}/").content.decode()

    assert "quoted_html" not in message.metadata
    assert "Show quoted text" not in page
