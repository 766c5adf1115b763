"""Channel secrets in Django admin (issue 12, item 9): never shown, kept unless replaced, changes audited by name."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry

from audit.models import Entry
from inbox.models import Channel
from inbox.services import channels
from inbox.transport import connector_class

pytestmark = pytest.mark.django_db

TOKEN = "tw-auth-token-7f3a9c0e51"
NEW_TOKEN = "tw-auth-token-replaced-42"


@pytest.fixture
def twilio(support):
    return channels.create_channel(
        kind="twilio-sms",
        name="Twilio SMS",
        team=support,
        channel_settings={"account_sid": "AC" + "0" * 32, "auth_token": TOKEN, "from_number": "+15005550006"},
    )


@pytest.fixture
def staff_client(client, admin):
    client.force_login(admin)
    return client


def change_url(channel: Channel) -> str:
    return f"/admin/inbox/channel/{channel.pk}/change/"


def visible(channel: Channel) -> dict:
    """The settings the change form shows: all but the connector's secrets."""
    hidden = connector_class(channel.kind).secret_settings
    return {k: v for k, v in channel.settings.items() if k not in hidden}


def form_data(channel: Channel, **extra):
    """What the browser posts back from the change form (with the JSON's hidden initial value)."""
    shown = json.dumps(visible(channel))
    return {
        "kind": channel.kind,
        "name": channel.name,
        "team": channel.team_id,
        "is_active": "on",
        "settings": shown,
        "initial-settings": shown,
        **extra,
    }


def test_the_change_form_never_shows_a_secret_but_says_it_is_set(staff_client, twilio):
    page = staff_client.get(change_url(twilio)).content.decode()
    assert TOKEN not in page  # neither in the JSON, nor its hidden initial copy, nor the secret's own field
    assert "••• set" in page
    assert 'name="secret_auth_token"' in page
    assert "account_sid" in page  # the other settings are still there to edit


def test_an_empty_secret_field_keeps_the_stored_secret(staff_client, twilio):
    response = staff_client.post(change_url(twilio), form_data(twilio, name="Twilio SMS (US)"))
    assert response.status_code == 302
    twilio.refresh_from_db()
    assert twilio.name == "Twilio SMS (US)"
    assert twilio.settings["auth_token"] == TOKEN


def test_a_typed_secret_replaces_the_stored_one(staff_client, twilio):
    response = staff_client.post(change_url(twilio), form_data(twilio, secret_auth_token=NEW_TOKEN))
    assert response.status_code == 302
    twilio.refresh_from_db()
    assert twilio.settings["auth_token"] == NEW_TOKEN


def test_a_secret_can_be_removed_when_the_channel_does_not_need_it(staff_client, support):
    channel = channels.create_channel(
        kind="email",
        name="Mail",
        team=support,
        channel_settings={"address": "help@example.test", "smtp_host": "127.0.0.1", "imap_password": "imap-pw-123"},
    )
    response = staff_client.post(change_url(channel), form_data(channel, clear_imap_password="on"))
    assert response.status_code == 302
    channel.refresh_from_db()
    assert "imap_password" not in channel.settings


def test_a_channel_added_in_the_admin_keeps_its_secret_out_of_the_page_afterwards(staff_client, support):
    response = staff_client.post(
        "/admin/inbox/channel/add/",
        {
            "kind": "twilio-sms",
            "name": "New line",
            "team": support.pk,
            "is_active": "on",
            "settings": json.dumps({"account_sid": "AC" + "1" * 32, "from_number": "+15005550007"}),
            "secret_auth_token": TOKEN,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get(name="New line")
    assert channel.settings["auth_token"] == TOKEN
    assert TOKEN not in staff_client.get(change_url(channel)).content.decode()


def test_a_secret_of_another_kind_of_channel_is_refused_with_a_reason(staff_client, support):
    response = staff_client.post(
        "/admin/inbox/channel/add/",
        {
            "kind": "simulator",
            "name": "Sim",
            "team": support.pk,
            "is_active": "on",
            "settings": json.dumps({"medium": "sms"}),
            "secret_imap_password": "x",
        },
    )
    assert response.status_code == 200
    assert "simulator channels have no such setting." in response.content.decode()
    assert not Channel.objects.filter(name="Sim").exists()


def test_a_changed_secret_is_recorded_by_name_never_by_value(staff_client, twilio, admin):
    staff_client.post(change_url(twilio), form_data(twilio, secret_auth_token=NEW_TOKEN))
    entry = Entry.objects.filter(action="changed", target_type="channel", target_id=str(twilio.pk)).get()
    assert entry.actor == admin.username
    assert entry.details["secret_keys"] == ["auth_token"]
    for row in Entry.objects.all():
        assert NEW_TOKEN not in json.dumps(row.details)
        assert TOKEN not in json.dumps(row.details)
    history = LogEntry.objects.get(object_id=str(twilio.pk))
    assert "auth_token" in history.get_change_message()
    assert NEW_TOKEN not in history.change_message
    assert TOKEN not in history.change_message


def test_saving_without_touching_a_secret_records_no_secret_change(staff_client, twilio):
    staff_client.post(change_url(twilio), form_data(twilio, name="Renamed"))
    entry = Entry.objects.filter(action="changed", target_type="channel").get()
    assert "secret_keys" not in entry.details
    assert entry.details["fields"] == ["Name"]
