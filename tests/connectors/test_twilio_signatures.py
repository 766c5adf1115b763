"""X-Twilio-Signature: the documented vectors, forged and missing signatures, and proxies."""

from __future__ import annotations

import hashlib

import pytest
from django.test import RequestFactory
from twilio.request_validator import RequestValidator

from connectors.twilio.messaging import TwilioSmsConnector
from inbox.models import InboundEvent, Message
from inbox.transport import InvalidRequest
from tests.fakes.twilio import FakeTwilio, fixture, form, post_signed, twilio_channel

TOKEN = FakeTwilio.auth_token
VECTOR_URL = "https://inbox.example.test/hooks/twilio/sms/"
JSON_BODY = '{"CallSid":"CA00000000000000000000000000000001","CallStatus":"ringing"}'


def test_the_documented_form_vector_signs_as_published():
    signature = RequestValidator(TOKEN).compute_signature(VECTOR_URL, form(fixture("sms.txt")))
    assert signature == "YpqMXBHhzoD0J0h1N/ucOiK8HzA="


def test_the_documented_json_vector_validates_with_its_body_hash():
    digest = hashlib.sha256(JSON_BODY.encode()).hexdigest()
    url = f"https://inbox.example.test/hooks/twilio/json/?bodySHA256={digest}"
    assert digest == "a1759fb763256a1fd2cb892426d9430d3cd02a0710e43af5a8123b5e6fa1859a"
    assert RequestValidator(TOKEN).validate(url, JSON_BODY, "eOyNZykots1DOmQp4qRGMZ6Qr4M=")


@pytest.fixture
def vector_channel(support):
    channel = twilio_channel("twilio-sms", team=support)
    channel.key = "twilio"
    channel.save(update_fields=["key"])
    return channel


def test_connector_accepts_the_form_vector_on_the_url_twilio_called(vector_channel):
    request = RequestFactory().post(
        "/hooks/twilio/sms/",
        data=fixture("sms.txt"),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": "YpqMXBHhzoD0J0h1N/ucOiK8HzA="},
    )
    TwilioSmsConnector(vector_channel).verify(request, "inbound")


def test_connector_accepts_the_json_vector_and_rejects_a_changed_body(vector_channel):
    digest = hashlib.sha256(JSON_BODY.encode()).hexdigest()
    connector = TwilioSmsConnector(vector_channel)
    good = RequestFactory().post(
        f"/hooks/twilio/json/?bodySHA256={digest}",
        data=JSON_BODY,
        content_type="application/json",
        headers={"X-Twilio-Signature": "eOyNZykots1DOmQp4qRGMZ6Qr4M="},
    )
    connector.verify(good, "inbound")
    tampered = RequestFactory().post(
        f"/hooks/twilio/json/?bodySHA256={digest}",
        data=JSON_BODY.replace("ringing", "completed"),
        content_type="application/json",
        headers={"X-Twilio-Signature": "eOyNZykots1DOmQp4qRGMZ6Qr4M="},
    )
    with pytest.raises(InvalidRequest) as refused:
        connector.verify(tampered, "inbound")
    assert refused.value.status == 403


def test_a_valid_signature_is_stored_and_answered_with_empty_twiml(client, support):
    channel = twilio_channel("twilio-sms", team=support)
    response = post_signed(client, channel, "inbound", fixture("sms.txt"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode().endswith("<Response/>")
    event = InboundEvent.objects.get()
    assert event.dedupe_key == "inbound:SM00000000000000000000000000000001"


@pytest.mark.parametrize("signature", ["", "YpqMXBHhzoD0J0h1N/ucOiK8HzA=", "bm90IGEgc2lnbmF0dXJl"])
def test_a_forged_or_missing_signature_gets_403_and_nothing_is_stored(client, support, signature):
    channel = twilio_channel("twilio-sms", team=support)
    response = post_signed(client, channel, "inbound", fixture("sms.txt"), signature=signature)
    assert response.status_code == 403
    assert not InboundEvent.objects.exists()
    assert not Message.objects.exists()


def test_a_body_changed_after_signing_is_refused(client, support):
    channel = twilio_channel("twilio-sms", team=support)
    url = channel.settings["public_base_url"] + f"/hooks/{channel.key}/inbound/"
    signature = RequestValidator(TOKEN).compute_signature(url, form(fixture("sms.txt")))
    tampered = fixture("sms.txt").replace("broken", "fine")
    response = post_signed(client, channel, "inbound", tampered, signature=signature)
    assert response.status_code == 403
    assert not InboundEvent.objects.exists()


def test_signature_is_checked_against_the_public_url_not_what_django_sees_behind_a_proxy(client, support):
    # Django sees http://testserver/...; Twilio called https://inbox.example.test/... through a proxy.
    channel = twilio_channel("twilio-sms", team=support, public_base_url="https://inbox.example.test/")
    response = post_signed(client, channel, "inbound", fixture("sms.txt"), query="via=proxy")
    assert response.status_code == 200
    wrong_host = RequestValidator(TOKEN).compute_signature(
        f"http://testserver/hooks/{channel.key}/inbound/", form(fixture("sms.txt"))
    )
    assert post_signed(client, channel, "inbound", fixture("sms.txt"), signature=wrong_host).status_code == 403


def test_a_webhook_signed_with_another_accounts_token_is_refused(client, support):
    channel = twilio_channel("twilio-sms", team=support)
    url = channel.settings["public_base_url"] + f"/hooks/{channel.key}/inbound/"
    other = RequestValidator("another-token").compute_signature(url, form(fixture("sms.txt")))
    assert post_signed(client, channel, "inbound", fixture("sms.txt"), signature=other).status_code == 403


def test_auth_token_can_come_from_the_environment(client, support, monkeypatch):
    monkeypatch.setenv("PARLEY_TEST_TWILIO_TOKEN", TOKEN)
    channel = twilio_channel("twilio-sms", team=support)
    channel.settings = {**channel.settings, "auth_token": "", "auth_token_env": "PARLEY_TEST_TWILIO_TOKEN"}
    channel.save(update_fields=["settings"])
    url = channel.settings["public_base_url"] + f"/hooks/{channel.key}/inbound/"
    signature = RequestValidator(TOKEN).compute_signature(url, form(fixture("sms.txt")))
    assert post_signed(client, channel, "inbound", fixture("sms.txt"), signature=signature).status_code == 200


def test_a_webhook_without_message_sid_is_a_400_not_a_500(client, support):
    channel = twilio_channel("twilio-sms", team=support)
    response = post_signed(client, channel, "inbound", "Body=hello&From=%2B15005550006")
    assert response.status_code == 400
    assert not InboundEvent.objects.exists()
