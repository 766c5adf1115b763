"""Collision control: the thread shows who else views it right now, over the operators' websocket
(a real consumer and the real Redis channel layer)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from inbox.models import Operator
from tests.conftest import PASSWORD
from tests.inbox.realtime.test_consumers import frames_until, is_json, nothing_matching, socket_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def carol(support) -> Operator:
    operator = Operator.objects.create_user("carol", "carol@example.test", PASSWORD, display_name="Carol")
    operator.teams.add(support)
    return operator


def viewers(conversation_id: int, names: list[str]):
    return is_json("viewers", conversation=conversation_id, names=names)


async def test_operators_see_who_else_views_the_thread_and_when_they_leave(alice, carol, bob, conversation):
    async with socket_for(alice) as alice_socket, socket_for(carol) as carol_socket, socket_for(bob) as bob_socket:
        await alice_socket.send_json_to({"type": "view", "conversation": conversation.pk})
        assert await frames_until(alice_socket, viewers(conversation.pk, []))
        await carol_socket.send_json_to({"type": "view", "conversation": conversation.pk})
        assert await frames_until(alice_socket, viewers(conversation.pk, ["Carol"]))
        assert await frames_until(carol_socket, viewers(conversation.pk, ["Alice"]))
        # Another team's operator who asks for the thread is refused and hears nothing of it.
        await bob_socket.send_json_to({"type": "view", "conversation": conversation.pk})
        assert await frames_until(bob_socket, is_json("refused", conversation=conversation.pk))
        assert await nothing_matching(bob_socket, is_json("viewers"))
        assert await nothing_matching(alice_socket, viewers(conversation.pk, ["Bob", "Carol"]))

        await carol_socket.send_json_to({"type": "view", "conversation": None})
        assert await frames_until(alice_socket, viewers(conversation.pk, []))


async def test_a_closed_tab_leaves_the_viewers(alice, carol, conversation):
    async with socket_for(alice) as alice_socket:
        await alice_socket.send_json_to({"type": "view", "conversation": conversation.pk})
        async with socket_for(carol) as carol_socket:
            await carol_socket.send_json_to({"type": "view", "conversation": conversation.pk})
            assert await frames_until(alice_socket, viewers(conversation.pk, ["Carol"]))
        assert await frames_until(alice_socket, viewers(conversation.pk, []))
