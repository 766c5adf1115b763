from __future__ import annotations

import asyncio
import contextlib
import json
from contextlib import asynccontextmanager
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from inbox.models import Operator
from inbox.realtime import groups, publish
from inbox.realtime.consumers import OperatorConsumer
from inbox.services import conversations, inbound, outbound
from inbox.transport import InboundMessage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    # The consumer's database work runs in a worker thread with its own connection: close it, or
    # PostgreSQL refuses to drop the test database at the end of the session.
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def conversation(sms):
    message = inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="in-1", address="+15005550006", text="Hello", name="Dora")
    )
    return message.conversation


@asynccontextmanager
async def socket_for(operator: Operator):
    communicator = WebsocketCommunicator(OperatorConsumer.as_asgi(), "/ws/inbox/")
    communicator.scope["user"] = operator
    connected, _ = await communicator.connect()
    assert connected
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def frames_until(communicator: WebsocketCommunicator, wanted: Any, wait: float = 3.0) -> str | dict:
    """Read frames until one satisfies ``wanted`` (HTML frames as text, JSON frames as dicts)."""
    async with asyncio.timeout(wait):
        while True:
            raw = await communicator.receive_from(timeout=wait)
            frame = json.loads(raw) if raw.startswith("{") else raw
            if wanted(frame):
                return frame


async def nothing_matching(communicator: WebsocketCommunicator, wanted: Any, wait: float = 0.6) -> bool:
    try:
        await frames_until(communicator, wanted, wait=wait)
    except TimeoutError:
        return True
    return False


def is_json(kind: str, **fields: Any):
    return lambda frame: (
        isinstance(frame, dict) and frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items())
    )


def is_changed(conversation_id: int):
    """A list ping naming the conversation (pings are coalesced: one names all that changed)."""
    return lambda frame: (
        isinstance(frame, dict) and frame.get("type") == "changed" and conversation_id in frame["conversations"]
    )


async def run(func, *args, **kwargs):
    return await database_sync_to_async(func)(*args, **kwargs)


async def test_anonymous_sockets_are_closed():
    from django.contrib.auth.models import AnonymousUser

    communicator = WebsocketCommunicator(OperatorConsumer.as_asgi(), "/ws/inbox/")
    communicator.scope["user"] = AnonymousUser()
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4401


async def test_sockets_from_another_origin_are_refused():
    from config.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/inbox/", headers=[(b"origin", b"https://evil.example")])
    connected, _ = await communicator.connect()
    assert not connected


async def test_an_operator_hears_about_their_teams_conversations_only(alice, bob, conversation):
    async with socket_for(alice) as alice_socket, socket_for(bob) as bob_socket:
        await run(publish.conversation_changed, conversation.pk)
        assert await frames_until(alice_socket, is_changed(conversation.pk))
        assert await nothing_matching(bob_socket, is_changed(conversation.pk))


async def test_garbage_from_the_browser_does_not_drop_the_connection(alice, conversation):
    async with socket_for(alice) as socket:
        await socket.send_to(text_data="not json")
        await socket.send_json_to({"type": "view", "conversation": "abc"})
        await socket.send_json_to(["a", "list"])
        await socket.send_json_to({"type": "view", "conversation": conversation.pk})
        assert await frames_until(socket, is_json("viewing", conversation=conversation.pk))


async def test_viewing_another_teams_conversation_is_refused(bob, conversation):
    async with socket_for(bob) as socket:
        await socket.send_json_to({"type": "view", "conversation": conversation.pk})
        assert await frames_until(socket, is_json("refused", conversation=conversation.pk))
        first = await run(conversation.messages.first)
        await run(publish.message_created, first.pk)
        assert await nothing_matching(socket, lambda frame: isinstance(frame, str) and "msg-" in frame)


async def test_a_viewer_gets_new_messages_and_status_changes_as_fragments(alice, conversation):
    async with socket_for(alice) as socket:
        await socket.send_json_to({"type": "view", "conversation": conversation.pk})
        await frames_until(socket, is_json("viewing", conversation=conversation.pk))
        reply = await run(outbound.reply, conversation=conversation, text="On its way", by=alice)
        # Services broadcast on commit; the test runs outside a transaction, so that is now.
        fragment = await frames_until(socket, lambda f: isinstance(f, str) and f'id="msg-{reply.pk}"' in f)
        assert f'hx-swap-oob="beforeend:#timeline-{conversation.customer_id}"' in fragment
        assert "On its way" in fragment
        await run(publish.message_changed, reply.pk)
        update = await frames_until(socket, lambda f: isinstance(f, str) and f'id="msg-{reply.pk}"' in f)
        assert 'hx-swap-oob="true"' in update


async def test_a_broadcast_to_several_of_my_groups_arrives_once(alice, conversation):
    await run(conversations.assign_conversation, conversation=conversation, operator=alice, by=alice)
    async with socket_for(alice) as socket:
        # Team group and alice's own group both carry this event.
        await run(publish.conversation_changed, conversation.pk)
        await frames_until(socket, is_changed(conversation.pk))
        assert await nothing_matching(socket, is_changed(conversation.pk))


async def test_operators_see_each_other_typing(alice, support, conversation):
    carol = await run(Operator.objects.create_user, "carol", "carol@example.test", "x", display_name="Carol")
    await run(carol.teams.add, support)
    async with socket_for(alice) as alice_socket, socket_for(carol) as carol_socket:
        for socket in (alice_socket, carol_socket):
            await socket.send_json_to({"type": "view", "conversation": conversation.pk})
            await frames_until(socket, is_json("viewing"))
        await alice_socket.send_json_to({"type": "typing"})
        frame = await frames_until(carol_socket, is_json("typing", conversation=conversation.pk))
        assert frame["name"] == "Alice"
        assert await nothing_matching(alice_socket, is_json("typing"))


async def presence_of(operator: Operator) -> str:
    return (await run(Operator.objects.get, pk=operator.pk)).presence


async def test_presence_counts_every_open_tab(alice):
    async with socket_for(alice):
        assert await presence_of(alice) == "online"
        async with socket_for(alice) as second:
            await second.send_json_to({"type": "presence", "state": "away"})
            await asyncio.sleep(0.2)
            assert await presence_of(alice) == "online"  # the first tab is still active
        assert await presence_of(alice) == "online"
    assert await presence_of(alice) == "offline"


async def test_an_idle_operator_is_away_and_teammates_are_told(alice, support):
    bob_in_support = await run(Operator.objects.create_user, "dave", "dave@example.test", "x", display_name="Dave")
    await run(bob_in_support.teams.add, support)
    async with socket_for(bob_in_support) as watcher, socket_for(alice) as socket:
        await socket.send_json_to({"type": "presence", "state": "away"})
        fragment = await frames_until(
            watcher, lambda f: isinstance(f, str) and f'id="presence-{alice.pk}"' in f and "away" in f
        )
        assert 'data-presence="away"' in fragment
        assert await presence_of(alice) == "away"


async def test_a_viewer_gets_the_new_header_and_customer_panel_when_the_conversation_changes(alice, conversation):
    async with socket_for(alice) as socket:
        await socket.send_json_to({"type": "view", "conversation": conversation.pk})
        await frames_until(socket, is_json("viewing"))
        await run(conversations.resolve_conversation, conversation=conversation, by=alice)
        fragment = await frames_until(
            socket, lambda f: isinstance(f, str) and f'id="thread-header-{conversation.pk}"' in f
        )
        assert "Resolved" in fragment
        assert f'id="customer-panel-{conversation.customer_id}" ' in fragment


async def test_a_new_customers_message_and_its_assignment_are_one_broadcast(alice, sms):
    from channels.layers import get_channel_layer

    await run(conversations.set_presence, operator=alice, presence="online")
    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(groups.group_for("team", sms.team_id), listener)
    message = await run(
        inbound.receive_message,
        channel=sms,
        inbound=InboundMessage(provider_id="in-9", address="+15005550009", text="Hello", name="Ed"),
    )
    events = []
    with contextlib.suppress(TimeoutError):
        while True:
            events.append(await asyncio.wait_for(layer.receive(listener), 1.0))
    events = [event for event in events if event["type"] != "inbox.presence"]
    assert len(events) == 1, events
    (event,) = events
    assert event["type"] == "inbox.message"
    assert event["conversation_id"] == message.conversation_id
    assert event["assignee_id"] == alice.pk  # routed before the broadcast: it rides on it
    assert event["changed"] is True
    kinds = [(entry["kind"], entry["direction"]) for entry in event["messages"]]
    assert kinds == [("message", "in"), ("activity", "internal")]
    assert event["messages"][0]["id"] == message.pk


async def test_list_pings_are_coalesced_but_the_first_goes_out_at_once(alice, sms):
    # Alice takes no work when her socket makes her online: routing the five waiting conversations
    # to her would send pings of its own, later or sooner by the machine's load.
    await run(Operator.objects.filter(pk=alice.pk).update, capacity=0)
    conversations = []
    for n in range(5):
        message = await run(
            inbound.receive_message,
            channel=sms,
            inbound=InboundMessage(provider_id=f"many-{n}", address=f"+1500555001{n}", text="Hi"),
        )
        conversations.append(message.conversation_id)

    def change_all() -> None:
        with publish.batched():
            for pk in conversations:
                publish.conversation_changed(pk)

    async with socket_for(alice) as socket:
        await run(change_all)
        pings = []
        named: set[int] = set()
        while named != set(conversations):
            ping = await frames_until(socket, is_json("changed"))
            pings.append(ping)
            named |= set(ping["conversations"])
        assert len(pings[0]["conversations"]) == 1  # leading edge: no waiting for the window
        assert len(pings) == 2  # the rest together, one window later
        assert await nothing_matching(socket, is_json("changed"))
