"""Open sockets per network address and channel are capped (settings-driven), with a clear close code."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from connectors.webchat import presence
from tests.connectors.webchat.conftest import ORIGIN
from tests.connectors.webchat.test_consumer import widget

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


async def refused_socket(channel, origin: str = ORIGIN) -> tuple[dict, dict]:
    """(the frame it got, how it was closed) for a socket over the cap."""
    communicator = WebsocketCommunicator(
        application, f"/ws/webchat/{channel.key}/", headers=[(b"origin", origin.encode())]
    )
    connected, _ = await communicator.connect()
    assert connected  # accepted first, so that the browser sees the code
    frame = json.loads(await communicator.receive_from(timeout=5))
    closed = await communicator.receive_output(timeout=5)
    await communicator.wait()
    return frame, closed


async def fresh_channel(team):
    """A channel of this test alone: other tests' sockets closing late count on theirs, not on it."""
    from inbox.services import channels

    return await database_sync_to_async(channels.create_channel)(
        kind="webchat", name="Counted", team=team, channel_settings={"allowed_origins": ORIGIN}
    )


async def test_past_the_cap_a_socket_is_closed_with_4429_and_a_reason(support, settings):
    settings.PARLEY_WEBCHAT_SOCKETS_PER_ADDRESS = 2
    webchat_channel = await fresh_channel(support)
    async with widget(webchat_channel), widget(webchat_channel):
        frame, closed = await refused_socket(webchat_channel)
        assert frame["code"] == "too_many_sockets"
        assert closed == {"type": "websocket.close", "code": presence.TOO_MANY_SOCKETS}
    # Closed sockets give their places back.
    async with widget(webchat_channel), widget(webchat_channel) as tab:
        assert tab.welcome["type"] == "welcome"


async def test_the_cap_counts_each_channel_on_its_own(support, other_site, settings):
    settings.PARLEY_WEBCHAT_SOCKETS_PER_ADDRESS = 1
    webchat_channel = await fresh_channel(support)
    async with widget(webchat_channel), widget(other_site, origin="https://other.example.test") as other:
        assert other.welcome["type"] == "welcome"


async def test_a_visitor_counts_as_here_while_a_tab_is_open(webchat_channel):
    async with widget(webchat_channel) as tab:
        visitor = presence_visitor(tab.welcome["token"], webchat_channel)
        assert await database_sync_to_async(presence.visitor_connected)(webchat_channel.pk, visitor)
    assert not await database_sync_to_async(presence.visitor_connected)(webchat_channel.pk, visitor)


def presence_visitor(token: str, channel) -> str:
    from connectors.webchat import protocol

    visitor = protocol.read_token(channel, token)
    assert visitor is not None
    return visitor
