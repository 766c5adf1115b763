"""The desktop notification of an assignment rides on the operator's own socket group."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from inbox.models import Operator
from inbox.realtime.consumers import OperatorConsumer
from inbox.services import assignment, conversations, inbound
from inbox.transport import InboundMessage
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def carol(support):
    operator = Operator.objects.create_user("carol", "carol@example.test", PASSWORD, display_name="Carol")
    operator.teams.add(support)
    return operator


@pytest.fixture
def conversation(sms):
    message = inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="an-1", address="+15005550006", text="Hello?", name="Dora")
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


async def assigned_frames(communicator: WebsocketCommunicator, wait: float = 1.5) -> list[dict[str, Any]]:
    """Every "assigned" frame that arrives within ``wait`` seconds."""
    frames = []
    try:
        async with asyncio.timeout(wait):
            while True:
                raw = await communicator.receive_from(timeout=wait)
                if raw.startswith("{") and (frame := json.loads(raw)).get("type") == "assigned":
                    frames.append(frame)
    except TimeoutError:
        pass
    return frames


def run(func, *args, **kwargs):
    return database_sync_to_async(func)(*args, **kwargs)


async def test_a_teammate_assigning_notifies_the_assignee_only(alice, carol, conversation):
    async with socket_for(alice) as alices, socket_for(carol) as carols:
        await run(conversations.assign_conversation, conversation=conversation, operator=alice, by=carol)

        [frame] = await assigned_frames(alices)
        assert frame == {
            "type": "assigned",
            "conversation": conversation.pk,
            "title": "Assigned to you: Dora",
            "body": "Hello?",
            "url": f"/c/{conversation.pk}/",
        }
        assert await assigned_frames(carols, wait=0.3) == []


async def test_automatic_routing_notifies_and_taking_it_yourself_does_not(alice, support, sms, conversation):
    async with socket_for(alice) as alices:  # online now: routing may give her work
        await run(assignment.assign_next, team_id=support.pk)
        assert [f["conversation"] for f in await assigned_frames(alices)] == [conversation.pk]

        await run(Operator.objects.filter(pk=alice.pk).update, capacity=0)  # routing stays out now
        await run(conversations.unassign_conversation, conversation=conversation, by=alice)
        await run(conversations.assign_conversation, conversation=conversation, operator=alice, by=alice)
        assert await assigned_frames(alices, wait=0.6) == []
