"""Meta's webhook door: the verification handshake, X-Hub-Signature-256 over the raw bytes, and bad
input answered with a clear 4xx or recorded as a visible, replayable failure — never a 500."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import override_settings

from connectors.meta.common import signature
from inbox.models import Channel, InboundEvent, Message
from inbox.services import inbound
from tests.fakes.meta import APP_SECRET, fixture_bytes, meta_channel, post_callback

pytestmark = pytest.mark.django_db

VECTOR_BODY = b'{"object":"whatsapp_business_account","entry":[]}'
VECTOR = "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756"


@pytest.fixture
def whatsapp(support):
    return meta_channel("whatsapp-cloud", team=support)


def handshake(client, channel, **params):
    query = {"hub.mode": "subscribe", "hub.verify_token": "verify-me-123", "hub.challenge": "1158201444", **params}
    return client.get(f"/hooks/{channel.key}/webhook/", query)


def test_the_signature_matches_the_documented_vector():
    assert signature("test_app_secret", VECTOR_BODY) == VECTOR


def test_a_callback_signed_like_the_vector_is_accepted(client, whatsapp):
    response = post_callback(client, whatsapp, VECTOR_BODY, signature=VECTOR)
    assert response.status_code == 200
    assert response.content == b"EVENT_RECEIVED"


def test_the_handshake_answers_the_challenge_as_plain_text(client, whatsapp):
    response = handshake(client, whatsapp)
    assert response.status_code == 200
    assert response.content == b"1158201444"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params", [{"hub.verify_token": "guessed"}, {"hub.mode": "unsubscribe"}, {"hub.verify_token": ""}]
)
def test_the_handshake_with_a_wrong_token_or_mode_is_refused(client, whatsapp, params):
    response = handshake(client, whatsapp, **params)
    assert response.status_code == 403
    assert b"1158201444" not in response.content


def test_a_logged_in_operator_of_another_team_gets_no_more_from_the_handshake_than_anyone(client, whatsapp, bob):
    client.force_login(bob)
    assert handshake(client, whatsapp, **{"hub.verify_token": "x"}).status_code == 403
    assert (
        client.post(f"/hooks/{whatsapp.key}/webhook/", data=b"{}", content_type="application/json").status_code == 403
    )


def test_a_forged_signature_is_refused_and_nothing_is_stored(client, whatsapp):
    body = fixture_bytes("whatsapp_text.json")
    forged = "sha256=" + "0" * 64
    assert post_callback(client, whatsapp, body, signature=forged).status_code == 403
    assert post_callback(client, whatsapp, body, secret="another-app-secret").status_code == 403
    assert post_callback(client, whatsapp, body, signature="").status_code == 403
    assert not InboundEvent.objects.exists()


def test_a_signature_over_other_bytes_is_refused(client, whatsapp):
    """Meta signs its own serialisation (non-ASCII escaped): the same JSON re-serialised is not it."""
    original = json.dumps({"object": "whatsapp_business_account", "entry": [], "note": "café"}).encode()
    reserialised = json.dumps(json.loads(original), ensure_ascii=False).encode()
    assert original != reserialised
    response = post_callback(client, whatsapp, reserialised, signature=signature(APP_SECRET, original))
    assert response.status_code == 403
    assert not InboundEvent.objects.exists()


def test_malformed_json_with_a_good_signature_is_a_clear_400(client, whatsapp):
    response = post_callback(client, whatsapp, b'{"object": "whatsapp_business_account", "entry": [')
    assert response.status_code == 400
    assert b"not JSON" in response.content
    assert not InboundEvent.objects.exists()


def test_an_unknown_object_type_is_recorded_and_fails_visibly_for_replay(client, whatsapp):
    response = post_callback(client, whatsapp, {"object": "permissions", "entry": [{"id": "1", "changes": []}]})
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    inbound.process_inbound_event(event_id=event.pk)
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.FAILED
    assert "unknown object type 'permissions'" in event.error
    assert not Message.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_an_oversized_callback_is_refused_with_413(client, whatsapp):
    body = json.dumps({"object": "whatsapp_business_account", "entry": [], "pad": "x" * 2000}).encode()
    response = post_callback(client, whatsapp, body)
    assert response.status_code == 413
    assert not InboundEvent.objects.exists()


def test_other_methods_and_endpoints_are_refused(client, whatsapp):
    assert client.put(f"/hooks/{whatsapp.key}/webhook/").status_code == 405
    assert post_callback(client, whatsapp, VECTOR_BODY, signature=VECTOR).status_code == 200
    assert (
        client.post(f"/hooks/{whatsapp.key}/inbound/", data=VECTOR_BODY, content_type="application/json").status_code
        == 404
    )


def test_channel_add_prints_the_callback_url_and_a_verify_token_but_no_secret(capsys, db):
    call_command(
        "channel",
        "add",
        "whatsapp-cloud",
        "--name",
        "WhatsApp",
        "--set",
        "phone_number_id=106540352242922",
        "--set",
        "access_token=EAAG-secret-token",
        "--set",
        "app_secret=the-app-secret",
    )
    printed = json.loads(capsys.readouterr().out)
    channel = Channel.objects.get()
    assert printed["webhooks"] == {"webhook": f"http://127.0.0.1:8000/hooks/{channel.key}/webhook/"}
    assert len(printed["settings"]["verify_token"]) >= 24
    assert printed["settings"]["verify_token"] == channel.settings["verify_token"]
    assert printed["settings"]["access_token"] == "***"
    assert printed["settings"]["app_secret"] == "***"
    assert "EAAG-secret-token" not in json.dumps(printed)


@pytest.mark.parametrize(
    ("kind", "values", "missing"),
    [
        ("whatsapp-cloud", {"access_token": "t", "app_secret": "s"}, "phone_number_id"),
        ("messenger", {"page_id": "1", "app_secret": "s"}, "page_token"),
        ("instagram", {"instagram_id": "1", "access_token": "t"}, "app_secret"),
    ],
)
def test_a_channel_without_its_credentials_is_refused(db, kind, values, missing):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=missing):
        call_command("channel", "add", kind, "--name", "X", *[f"--set={k}={v}" for k, v in values.items()])
