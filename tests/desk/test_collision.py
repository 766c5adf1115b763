"""Collision control: sending on top of a teammate's reply asks first and shows it; a team may let
only the assignee reply."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from desk.models import TeamSettings
from inbox.models import Message, Operator
from inbox.services import conversations, outbound
from inbox.services.conversations import ReplyRefused
from tests.conftest import PASSWORD


@pytest.fixture
def carol(support) -> Operator:
    """A second operator of Support."""
    operator = Operator.objects.create_user("carol", "carol@example.test", PASSWORD, display_name="Carol")
    operator.teams.add(support)
    return operator


def opened(client: Client, conversation) -> str:
    """The thread as the operator opens it: the reply box's hidden opened_at."""
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    found = re.search(r'name="opened_at" value="([^"]+)"', page)
    assert found, "the reply box carries when it was opened"
    return found.group(1)


def send(client: Client, conversation, text: str, opened_at: str, **extra: str):
    return client.post(
        f"/c/{conversation.pk}/send/",
        {"text": text, "mode": "reply", "opened_at": opened_at, **extra},
        HTTP_HX_REQUEST="true",
    )


def test_sending_on_top_of_a_teammates_reply_asks_first_and_shows_it(client, alice, carol, conversation):
    client.force_login(alice)
    opened_at = opened(client, conversation)
    outbound.reply(conversation=conversation, text="Carol here: it ships tomorrow.", by=carol)

    answer = send(client, conversation, "It ships today!", opened_at)
    assert answer.status_code == 409
    body = answer.content.decode()
    assert "Carol here: it ships tomorrow." in body
    assert "Send anyway" in body
    assert answer["HX-Retarget"] == "#thread-errors"
    assert not Message.objects.filter(text="It ships today!").exists()

    confirmed = send(client, conversation, "It ships today!", opened_at, confirm="1")
    assert confirmed.status_code == 200
    assert Message.objects.filter(text="It ships today!", author=alice).exists()


def test_no_one_else_replied_sends_at_once(client, alice, conversation):
    client.force_login(alice)
    opened_at = opened(client, conversation)
    outbound.reply(conversation=conversation, text="My own first answer", by=alice)
    assert send(client, conversation, "And a second one", opened_at).status_code == 200


def test_a_private_note_never_asks(client, alice, carol, conversation):
    client.force_login(alice)
    opened_at = opened(client, conversation)
    outbound.reply(conversation=conversation, text="Carol's reply", by=carol)
    answer = client.post(
        f"/c/{conversation.pk}/send/", {"text": "FYI", "mode": "note", "opened_at": opened_at}, HTTP_HX_REQUEST="true"
    )
    assert answer.status_code == 200


# -- only the assignee replies (a team setting) -----------------------------------------------------


@pytest.fixture
def strict_team(support) -> TeamSettings:
    return TeamSettings.objects.create(team=support, only_assignee_replies=True)


def test_only_the_assignee_replies_when_the_team_says_so(client, alice, carol, admin, conversation, strict_team):
    conversations.assign_conversation(conversation=conversation, operator=carol, by=carol)
    conversation.refresh_from_db()
    with pytest.raises(ReplyRefused, match="only the assignee replies"):
        outbound.reply(conversation=conversation, text="Butting in", by=alice)
    client.force_login(alice)
    answer = client.post(f"/c/{conversation.pk}/send/", {"text": "Butting in", "mode": "reply"}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 422
    assert "Carol has this conversation" in answer.content.decode()
    # A private note is fine, the assignee replies, and an admin may step in.
    assert (
        client.post(f"/c/{conversation.pk}/send/", {"text": "Ping", "mode": "note"}, HTTP_HX_REQUEST="true").status_code
        == 200
    )
    outbound.reply(conversation=conversation, text="Carol answers", by=carol)
    outbound.reply(conversation=conversation, text="Admin steps in", by=admin)
    assert not Message.objects.filter(text="Butting in").exists()


def test_an_unassigned_conversation_stays_open_to_the_team(alice, conversation, strict_team):
    assert outbound.reply(conversation=conversation, text="I take it", by=alice).status == Message.Status.QUEUED


def test_without_the_setting_anyone_of_the_team_replies(alice, carol, conversation):
    conversations.assign_conversation(conversation=conversation, operator=carol, by=carol)
    conversation.refresh_from_db()
    assert outbound.reply(conversation=conversation, text="Helping out", by=alice).status == Message.Status.QUEUED
