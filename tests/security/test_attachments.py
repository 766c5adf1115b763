"""Attachments leave Parley only through access-checked views, never as a page of our origin.

A customer's ``.html`` (or SVG) served as ``text/html`` from our origin would run script with the
operator's session. The policy (inbox.files, docs/security.md "Attachments"): no public ``/media/``,
inline only for images, sound and video, everything else a sandboxed download with ``nosniff``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings

from inbox.models import Attachment
from inbox.services import inbound, outbound
from inbox.transport import InboundAttachment, InboundMessage
from tests.conftest import ROOT
from tests.fakes.twilio import fixture, post_signed, running, twilio_channel

SCRIPT = b"<html><body><script>fetch('/admin/').then(r => r.text()).then(steal)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'


def received(channel, *attachments: InboundAttachment) -> list[Attachment]:
    message = inbound.receive_message(
        channel=channel,
        inbound=InboundMessage(provider_id="m1", address="+15005550006", text="see attached", attachments=attachments),
    )
    return list(message.attachments.order_by("pk"))


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.stack
def test_no_url_serves_the_media_folder_with_the_default_settings(sms):
    """The embedded default runs with DEBUG on; even then /media/ is no way around the access check."""
    [page] = received(sms, InboundAttachment(filename="invoice.html", content_type="text/html", content=SCRIPT))
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "from django.conf import settings;"
        f"r = Client().get('/' + settings.MEDIA_URL.lstrip('/') + {page.file.name!r});"
        "c = b''.join(r.streaming_content) if r.streaming else r.content;"
        "print(json.dumps([settings.DEBUG, r.status_code, b'steal' in c]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "PARLEY_PRODUCTION"}}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings", "MEDIA_ROOT": str(settings.MEDIA_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    debug, status, served = json.loads(result.stdout.strip().splitlines()[-1])

    assert debug is True  # the default settings, as a fresh clone runs them
    assert status == 404
    assert served is False


def test_a_customers_html_file_is_a_sandboxed_download_never_a_page(client, sms, alice):
    [page] = received(sms, InboundAttachment(filename="invoice.html", content_type="text/html", content=SCRIPT))
    client.force_login(alice)

    response = client.get(f"/a/{page.pk}/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith('attachment; filename="invoice.html"')
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert body(response) == SCRIPT  # the bytes as sent, to download


@pytest.mark.parametrize(
    ("filename", "content_type", "content"),
    [
        ("drawing.svg", "image/svg+xml", SVG),
        ("page.xhtml", "application/xhtml+xml", SCRIPT),
        ("claims-a-picture.png", "text/html; charset=utf-8", SCRIPT),
        ("report.pdf", "application/pdf", b"%PDF-1.4"),
    ],
)
def test_anything_but_images_sound_and_video_is_downloaded(client, sms, alice, filename, content_type, content):
    [stored] = received(sms, InboundAttachment(filename=filename, content_type=content_type, content=content))
    client.force_login(alice)

    response = client.get(f"/a/{stored.pk}/")

    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"].startswith("sandbox; default-src 'none'")


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [("photo.jpg", "image/jpeg"), ("voice-note.mp3", "audio/mpeg"), ("clip.mp4", "video/mp4")],
)
def test_images_sound_and_video_are_shown_inline_still_sandboxed(client, sms, alice, filename, content_type):
    [stored] = received(sms, InboundAttachment(filename=filename, content_type=content_type, content=b"\x00media"))
    client.force_login(alice)

    response = client.get(f"/a/{stored.pk}/")

    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"].startswith(f'inline; filename="{filename}"')
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"].startswith("sandbox; default-src 'none'")


def test_an_svg_is_listed_as_a_download_not_drawn_as_an_image(client, sms, alice):
    [drawing] = received(sms, InboundAttachment(filename="drawing.svg", content_type="image/svg+xml", content=SVG))
    client.force_login(alice)

    page = client.get(f"/c/{drawing.message.conversation_id}/").content.decode()

    listed = page.split('class="attachments"', 1)[1].split("</ul>", 1)[0]
    assert f'href="/a/{drawing.pk}/" download' in listed
    assert "<img" not in listed


def test_files_are_stored_under_random_names_without_the_senders_extension(sms):
    [page] = received(sms, InboundAttachment(filename="invoice.html", content_type="text/html", content=SCRIPT))

    stored_name = page.file.name.rsplit("/", 1)[-1]

    assert page.filename == "invoice.html"
    assert "invoice" not in stored_name
    assert not stored_name.endswith(".html")
    assert page.file.read() == SCRIPT


def test_attachments_are_served_neither_to_anonymous_visitors_nor_to_other_teams(client, sms, bob):
    [page] = received(sms, InboundAttachment(filename="invoice.pdf", content_type="application/pdf", content=b"%PDF"))

    anonymous = client.get(f"/a/{page.pk}/")
    client.force_login(bob)
    other_team = client.get(f"/a/{page.pk}/")

    assert anonymous.status_code == 302
    assert "/login/" in anonymous["Location"]
    assert other_team.status_code == 404


# -- the media link Twilio fetches outbound attachments from -------------------------------------


@pytest.fixture
def fake():
    with running() as server:
        yield server


def media_link(client, support, fake, alice, attachment: InboundAttachment):
    channel = twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url)
    assert post_signed(client, channel, "inbound", fixture("sms.txt")).status_code == 200
    from inbox.models import InboundEvent
    from inbox.services import inbound

    inbound.process_inbound_event(event_id=InboundEvent.objects.get(channel=channel).pk)
    conversation = channel.messages.get().conversation
    reply = outbound.reply(conversation=conversation, text="Here it is", by=alice, attachments=(attachment,))
    outbound.deliver_message(message_id=reply.pk)
    [url] = fake.sent[-1].params["MediaUrl"]
    return urlsplit(url)


def test_the_twilio_media_link_never_serves_a_page(client, support, fake, alice):
    link = media_link(
        client, support, fake, alice, InboundAttachment(filename="page.html", content_type="text/html", content=SCRIPT)
    )

    response = client.get(link.path, parse_qs(link.query))  # as Twilio fetches it: no session

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"


def test_the_twilio_media_link_names_a_pdf_for_twilio_but_sandboxed_as_a_download(client, support, fake, alice):
    link = media_link(
        client,
        support,
        fake,
        alice,
        InboundAttachment(filename="label.pdf", content_type="application/pdf", content=b"%PDF-1.4 label"),
    )

    response = client.get(link.path, parse_qs(link.query))

    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="label.pdf"')
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert response.content == b"%PDF-1.4 label"


def test_the_twilio_media_link_shows_a_picture_inline(client, support, fake, alice):
    link = media_link(
        client, support, fake, alice, InboundAttachment(filename="p.png", content_type="image/png", content=b"\x89PNG")
    )

    response = client.get(link.path, parse_qs(link.query))

    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline;")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_forged_or_expired_media_link_is_404(client, support, fake, alice):
    link = media_link(
        client, support, fake, alice, InboundAttachment(filename="p.png", content_type="image/png", content=b"\x89PNG")
    )
    token = parse_qs(link.query)["a"][0]
    pk, _, signature = token.partition(":")

    assert client.get(link.path, {"a": f"{int(pk) + 1}:{signature}"}).status_code == 404
    assert client.get(link.path, {"a": ""}).status_code == 404
