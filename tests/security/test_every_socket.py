"""The operator websocket, walked as the URLs are (test_every_url.py): every websocket URL has an
entry, anonymous sockets are refused, and an operator of team B cannot watch team A's thread."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from inbox.models import Operator
from tests.security.test_every_url import CUSTOMER_NAME, PHONE, receive

WEBSOCKETS = {"ws/inbox/": "operators only; a thread view only for those who may see the conversation"}


def test_every_websocket_url_has_an_entry():
    from inbox.realtime.routing import websocket_urlpatterns

    assert sorted(str(pattern.pattern) for pattern in websocket_urlpatterns) == sorted(WEBSOCKETS)


def session_cookie(operator: Operator) -> str:
    client = Client()
    client.force_login(operator)
    return client.cookies["sessionid"].value


def socket(session: str = ""):
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return WebsocketCommunicator(application, "/ws/inbox/", headers=headers)


@pytest.mark.django_db(transaction=True)
async def test_the_operator_websocket_refuses_anonymous_visitors():
    communicator = socket()
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4401


@pytest.mark.django_db(transaction=True)
async def test_another_team_cannot_watch_a_thread_over_the_websocket(alice, bob, sms):
    from tests.security.live import frames_until, html_with, is_changed, is_json, nothing_matching, run

    message = await run(receive, sms, "ws-1", PHONE, "first words", CUSTOMER_NAME)
    bob_session = await run(session_cookie, bob)
    alice_session = await run(session_cookie, alice)
    bob_socket, alice_socket = socket(bob_session), socket(alice_session)
    try:
        assert (await bob_socket.connect())[0]
        assert (await alice_socket.connect())[0]
        for communicator in (bob_socket, alice_socket):
            await communicator.send_json_to({"type": "view", "conversation": message.conversation_id})
        assert await frames_until(bob_socket, is_json("refused", conversation=message.conversation_id))
        assert await frames_until(alice_socket, is_json("viewing", conversation=message.conversation_id))

        await run(receive, sms, "ws-2", PHONE, "marker-message-7f3 again", CUSTOMER_NAME)
        assert await frames_until(alice_socket, html_with("marker-message-7f3"))  # the same push, for team A
        assert await nothing_matching(
            bob_socket, lambda f: html_with("marker-message-7f3")(f) or is_changed(message.conversation_id)(f)
        )
        # Typing in a thread that is not theirs goes nowhere either.
        await bob_socket.send_json_to({"type": "typing"})
        assert await nothing_matching(alice_socket, is_json("typing"))
    finally:
        await bob_socket.disconnect()
        await alice_socket.disconnect()
        from django.db import connections

        await database_sync_to_async(connections.close_all)()
