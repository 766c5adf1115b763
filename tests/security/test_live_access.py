"""Live updates follow access as it is now, not as it was when the socket connected (issue 12, item 5).

Real consumer, real channel layer on Redis; changes are made the way the admin makes them (the
ORM, whose signals publish after commit).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from channels.db import database_sync_to_async

from inbox.models import Conversation, Operator, Team
from inbox.realtime import groups, publish
from inbox.services import conversations, inbound
from inbox.transport import InboundMessage
from tests.security.live import (
    closed_with,
    frames_until,
    html_with,
    is_changed,
    is_json,
    nothing_matching,
    run,
    socket_for,
    view,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def conversation(sms):
    message = inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="in-1", address="+15005550006", text="Hello", name="Dora")
    )
    return message.conversation


def customer_writes(sms, text: str, provider_id: str) -> None:
    inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id=provider_id, address="+15005550006", text=text)
    )


def _remove_with_operator_teams(alice: Operator, team: Team) -> None:
    alice.teams.remove(team)


def _remove_with_team_operators(alice: Operator, team: Team) -> None:
    team.operators.remove(alice)


def _clear_team(alice: Operator, team: Team) -> None:
    team.operators.clear()


def _set_other_teams(alice: Operator, team: Team) -> None:
    alice.teams.set([Team.objects.create(name="Elsewhere")])


def _delete_team(alice: Operator, team: Team) -> None:
    team.delete()


@pytest.mark.parametrize(
    "remove",
    [_remove_with_operator_teams, _remove_with_team_operators, _clear_team, _set_other_teams, _delete_team],
    ids=["operator.teams.remove", "team.operators.remove", "team.operators.clear", "operator.teams.set", "team.delete"],
)
async def test_an_operator_removed_from_the_team_stops_receiving_its_live_updates(
    alice, support, sms, conversation, remove
):
    async with socket_for(alice) as socket:
        await view(socket, conversation.pk)
        await run(customer_writes, sms, "before the change", "in-2")
        assert await frames_until(socket, html_with("before the change"))

        await run(remove, alice, support)
        # The page is told to re-fetch, and the thread it shows is no longer theirs.
        assert await frames_until(socket, is_json("access"))
        await run(customer_writes, sms, "after the change", "in-3")
        assert await nothing_matching(
            socket, lambda f: html_with("after the change")(f) or is_changed(conversation.pk)(f)
        )


async def test_a_view_is_rechecked_when_its_conversation_moves_to_another_team(alice, sales, sms, conversation):
    async with socket_for(alice) as socket:
        await view(socket, conversation.pk)
        # Moved without a word to alice's groups (the admin's change form, a bulk update...).
        await run(Conversation.objects.filter(pk=conversation.pk).update, team=sales)
        await run(customer_writes, sms, "now for sales only", "in-2")
        assert await frames_until(socket, is_json("refused", conversation=conversation.pk))
        assert await nothing_matching(socket, html_with("now for sales only"))


async def test_a_viewer_still_gets_every_push_while_access_holds(alice, sms, conversation):
    async with socket_for(alice) as socket:
        await view(socket, conversation.pk)
        for n in range(3):
            await run(customer_writes, sms, f"message number {n}", f"in-{n + 2}")
            assert await frames_until(socket, html_with(f"message number {n}"))


async def test_an_operator_added_to_a_team_hears_about_it_without_reconnecting(bob, support, conversation):
    async with socket_for(bob) as socket:
        await run(publish.conversation_changed, conversation.pk)
        assert await nothing_matching(socket, is_changed(conversation.pk))

        await run(bob.teams.add, support)
        assert await frames_until(socket, is_json("access"))
        await run(publish.conversation_changed, conversation.pk)
        assert await frames_until(socket, is_changed(conversation.pk))
        await view(socket, conversation.pk)


async def test_a_deactivated_operator_has_every_socket_closed(alice, sms, conversation):
    async with socket_for(alice) as first, socket_for(alice) as second:
        await view(first, conversation.pk)
        alice_now = await run(Operator.objects.get, pk=alice.pk)
        alice_now.is_active = False
        await run(alice_now.save)
        assert await closed_with(first) == 4403
        assert await closed_with(second) == 4403


async def test_a_deleted_operator_has_every_socket_closed(alice):
    async with socket_for(alice) as socket:
        await run(Operator.objects.filter(pk=alice.pk).delete)
        assert await closed_with(socket) == 4403


async def test_an_operator_who_loses_staff_stops_hearing_about_other_teams(conversation):
    boss = await run(Operator.objects.create_user, "boss", "boss@example.test", "x", is_staff=True)
    async with socket_for(boss) as socket:
        await run(publish.conversation_changed, conversation.pk)
        assert await frames_until(socket, is_changed(conversation.pk))
        await view(socket, conversation.pk)

        boss.is_staff = False
        await run(boss.save)
        assert await frames_until(socket, is_json("refused", conversation=conversation.pk))
        assert await frames_until(socket, is_json("access"))
        await run(publish.conversation_changed, conversation.pk)
        assert await nothing_matching(socket, is_changed(conversation.pk))


async def test_the_assignment_notice_is_not_sent_for_a_conversation_no_longer_visible(alice, support, conversation):
    async with socket_for(alice) as socket:
        await run(Conversation.objects.filter(pk=conversation.pk).update, team=None)
        await run(publish.conversation_assigned, conversation.pk, alice.pk)
        assert await nothing_matching(socket, is_json("assigned"))


async def test_only_changes_of_access_are_published(alice, support, sales):
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(groups.group_for("operator", alice.pk), listener)

    alice.display_name = "Alice A."
    await run(alice.save)
    await run(conversations.set_presence, operator=alice, presence="online")
    await run(alice.teams.add, support)  # already hers
    await run(alice.teams.add, sales)  # the one change of access
    events = []
    with contextlib.suppress(TimeoutError):
        while True:  # (a cancelled receive ends the listener: read everything in one go)
            events.append(await asyncio.wait_for(layer.receive(listener), 1.0))
    assert [event["type"] for event in events if event["type"] == "inbox.access"] == ["inbox.access"]
