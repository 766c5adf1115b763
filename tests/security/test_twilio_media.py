"""Twilio media and recordings are fetched from Twilio's hosts only, redirects included.

A media URL comes in a webhook; a redirect comes from whoever answers. Our worker must never fetch
for somebody else (an internal address, another site), with or without the account's credentials.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import pytest

from connectors.twilio.messaging import TwilioMessagingConnector
from inbox.models import InboundEvent, Message
from inbox.services import inbound
from tests.fakes.http import LocalServer
from tests.fakes.twilio import fixture, post_signed, running, twilio_channel

ME1 = "/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages/MM00000000000000000000000000000002/Media/ME00000000000000000000000000000001"
RECORDING = "/2010-04-01/Accounts/AC00000000000000000000000000000001/Recordings/RE00000000000000000000000000000001"


def voice_fixture(name: str) -> str:
    return dict(line.split(" ", 1) for line in fixture("voice.txt").splitlines())[name]


class Elsewhere(LocalServer):
    """Some other host (an internal service, an attacker's site): it records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        self.seen.append((handler.path, handler.headers.get("Authorization", "")))
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", "5")
        handler.end_headers()
        handler.wfile.write(b"\xff\xd8bad")


@pytest.fixture
def fake():
    with running() as server:
        yield server


@pytest.fixture
def elsewhere():
    server = Elsewhere().start()
    yield server
    server.stop()


@pytest.fixture
def sms(support, fake):
    return twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url)


def mms(client, channel, media_url: str) -> Message:
    body = (
        "MessageSid=MM00000000000000000000000000000002&From=%2B15005550006&To=%2B15555550100&Body=see+photo"
        f"&NumMedia=1&MediaContentType0=image%2Fjpeg&MediaUrl0={media_url}"
    )
    assert post_signed(client, channel, "inbound", body).status_code == 200
    event = InboundEvent.objects.get(channel=channel)
    inbound.process_inbound_event(event_id=event.pk)
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    return Message.objects.get(channel=channel)


def test_a_media_url_on_another_host_is_never_fetched_and_the_text_is_kept(client, sms, elsewhere):
    message = mms(client, sms, f"{elsewhere.base_url}/internal/secrets.jpg")

    assert elsewhere.seen == []
    assert message.text == "see photo"
    assert not message.attachments.exists()
    [skipped] = message.metadata["skipped_attachments"]
    assert "not one of Twilio's hosts" in skipped["reason"]


def test_a_redirect_away_from_twilio_is_not_followed(client, sms, fake, elsewhere):
    url = fake.redirect(ME1, f"{elsewhere.base_url}/stolen.jpg")

    message = mms(client, sms, url)

    assert elsewhere.seen == []
    assert not message.attachments.exists()
    assert "not one of Twilio's hosts" in message.metadata["skipped_attachments"][0]["reason"]


def test_a_redirect_within_twilio_is_followed(client, sms, fake):
    stored = "/storage/ME00000000000000000000000000000001"
    fake.add_media(stored, b"\xff\xd8jpeg-bytes", "image/jpeg")
    url = fake.redirect(ME1, fake.base_url + stored)

    message = mms(client, sms, url)

    assert message.attachments.get().file.read() == b"\xff\xd8jpeg-bytes"
    assert ("GET", stored) in fake.requests


def test_endless_redirects_give_up(client, sms, fake):
    url = fake.redirect(ME1, fake.base_url + ME1)

    message = mms(client, sms, url)

    assert not message.attachments.exists()
    assert "too many times" in message.metadata["skipped_attachments"][0]["reason"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", True),
        ("https://mms.twiliocdn.com/AC1/abc?Expires=1&Signature=x", True),
        ("https://media.twiliocdn.com/AC1/abc", True),
        ("https://s3-external-1.amazonaws.com/media.twiliocdn.com/AC1/abc", True),
        ("https://s3-external-1.amazonaws.com/someone-elses-bucket/abc", False),
        ("http://api.twilio.com/2010-04-01/x", False),  # not HTTPS
        ("https://api.twilio.com:8443/x", False),
        ("https://api.twilio.com.evil.test/x", False),
        ("https://twilio.com.evil.test/x", False),
        ("https://api.twilio.com@evil.test/x", False),
        ("https://evil.test/?next=https://api.twilio.com/", False),
        ("https://169.254.169.254/latest/meta-data/", False),
        ("file:///etc/passwd", False),
    ],
)
def test_only_twilios_hosts_are_allowed(db, url, allowed):
    from inbox.models import Channel

    connector = TwilioMessagingConnector(Channel(kind="twilio-sms", settings={"account_sid": "AC1"}))

    assert connector.media_url_allowed(url) is allowed


def test_a_recording_redirected_away_from_twilio_is_not_fetched(client, support, alice, fake, elsewhere):
    line = twilio_channel("twilio-voice", team=support, api_base_url=fake.base_url)
    fake.redirect(RECORDING + ".mp3", f"{elsewhere.base_url}/stolen.mp3")
    post_signed(client, line, "voice", voice_fixture("voice"))
    recorded = voice_fixture("recording").replace(
        "https%3A%2F%2Fapi.twilio.com", fake.base_url.replace(":", "%3A").replace("/", "%2F")
    )
    post_signed(client, line, "recording", recorded)
    entry = Message.objects.get(kind="call")
    client.force_login(alice)

    response = client.get(f"/twilio/voice/recording/{entry.pk}/")

    assert response.status_code == 404
    assert elsewhere.seen == []


def test_a_recording_is_played_inline_and_sandboxed(client, support, alice, fake):
    line = twilio_channel("twilio-voice", team=support, api_base_url=fake.base_url)
    fake.add_media(RECORDING + ".mp3", b"ID3-voicemail", "audio/mpeg")
    post_signed(client, line, "voice", voice_fixture("voice"))
    recorded = voice_fixture("recording").replace(
        "https%3A%2F%2Fapi.twilio.com", fake.base_url.replace(":", "%3A").replace("/", "%2F")
    )
    post_signed(client, line, "recording", recorded)
    client.force_login(alice)

    response = client.get(f"/twilio/voice/recording/{Message.objects.get(kind='call').pk}/")

    assert response["Content-Type"] == "audio/mpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    assert b"".join(response.streaming_content) == b"ID3-voicemail"
