# ruff: noqa: RUF001 -- Persian test data: those letters and digits are meant.
"""The widget's websocket protocol against the real ASGI routing, the real channel layer and Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import asynccontextmanager
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core import signing

from config.asgi import application
from connectors.webchat import protocol
from connectors.webchat.connector import WebchatConnector
from customers.models import Identity
from inbox.models import Conversation, Message
from inbox.services import outbound
from tests.conftest import wait_for
from tests.connectors.webchat.conftest import ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


async def run(func, *args, **kwargs):
    return await database_sync_to_async(func)(*args, **kwargs)


@asynccontextmanager
async def widget(
    channel, *, origin: str = ORIGIN, token: str | None = None, after: int | None = None, have=(), hello: bool = True
):
    """A visitor's tab: connected, and (unless told otherwise) past its hello; ``.welcome`` holds the answer."""
    communicator = WebsocketCommunicator(
        application, f"/ws/webchat/{channel.key}/", headers=[(b"origin", origin.encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    try:
        if hello:
            await communicator.send_json_to(
                {"type": "hello", "token": token, "after": after, "have": list(have), "locale": "en"}
            )
            communicator.welcome = await frame_of(communicator, "welcome")
        yield communicator
    finally:
        await communicator.disconnect()


async def frame_of(communicator, kind: str, wait: float = 5.0, **fields: Any) -> dict[str, Any]:
    """The next frame of ``kind``. ``message`` skips system lines ("Alice joined"); ``system`` is one."""
    async with asyncio.timeout(wait):
        while True:
            raw = await communicator.receive_from(timeout=wait)
            frame = json.loads(raw) if raw.startswith("{") else {}  # operators' sockets also get HTML
            system = frame.get("type") == "message" and frame["message"].get("from") == "system"
            matched = frame.get("type") == "message" and system if kind == "system" else frame.get("type") == kind
            if kind == "message" and system:
                continue
            if matched and all(frame.get(k) == v for k, v in fields.items()):
                return frame


def said(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages of a welcome or a poll without the system lines ("Alice joined")."""
    return [m for m in messages if m["from"] != "system"]


async def nothing_of(communicator, kind: str, wait: float = 0.6) -> bool:
    """No frame of ``kind`` arrives within ``wait`` seconds (frames of other kinds are read and dropped).

    Never lets a receive time out: the test communicator cancels the application when one does.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        if await communicator.receive_nothing(timeout=min(0.05, max(0.0, deadline - loop.time()))):
            continue
        frame = await communicator.receive_json_from(timeout=1)
        if frame.get("type") == kind:
            return False
    return True


async def say(communicator, text: str, client_msg_id: str | None = None) -> dict[str, Any]:
    client_msg_id = client_msg_id or str(uuid.uuid4())
    await communicator.send_json_to({"type": "message", "client_msg_id": client_msg_id, "text": text})
    return await frame_of(communicator, "ack", client_msg_id=client_msg_id)


def answer(conversation_id: int, text: str, operator=None) -> Message:
    """An operator's reply through the outbox, delivered as the worker would.

    A real worker of the session (the browser tests start one) may claim it first: either way it
    is sent once, and this waits for that.
    """
    conversation = Conversation.objects.get(pk=conversation_id)
    message = outbound.reply(conversation=conversation, text=text, by=operator)
    outbound.deliver_message(message_id=message.pk)
    return wait_for(lambda: Message.objects.exclude(status__in=["queued", "sending"]).filter(pk=message.pk).first())


# -- the protocol --------------------------------------------------------------------------------------


async def test_a_visitor_message_is_acknowledged_once_stored(webchat_channel):
    async with widget(webchat_channel) as tab:
        assert tab.welcome["new"] is True
        assert tab.welcome["messages"] == []
        ack = await say(tab, "Hi, is anyone there?")
    message = await run(Message.objects.select_related("customer").get, pk=ack["id"])
    assert message.text == "Hi, is anyone there?"
    assert message.channel_id == webchat_channel.pk
    assert message.direction == Message.Direction.INBOUND
    assert ack["message"] == {
        "id": message.pk,
        "from": "visitor",
        "name": "",
        "text": "Hi, is anyone there?",
        "at": message.created_at.isoformat(),
        "client_msg_id": ack["client_msg_id"],
    }
    visitor = protocol.read_token(webchat_channel, tab.welcome["token"])
    assert await run(Identity.objects.filter(kind="webchat", value=visitor, customer=message.customer).exists)


async def test_a_resend_after_a_drop_is_stored_once_and_acknowledged_with_the_same_id(webchat_channel):
    client_msg_id = str(uuid.uuid4())
    async with widget(webchat_channel) as tab:
        first = await say(tab, "Where is my order?", client_msg_id)
        again = await say(tab, "Where is my order?", client_msg_id)
        token = tab.welcome["token"]
    async with widget(webchat_channel, token=token, after=first["id"]) as tab:
        after_reconnect = await say(tab, "Where is my order?", client_msg_id)
    assert first["id"] == again["id"] == after_reconnect["id"]
    assert await run(Message.objects.filter(channel=webchat_channel, direction="in").count) == 1


async def test_messages_are_stored_in_the_order_the_tab_sent_them(webchat_channel):
    async with widget(webchat_channel) as tab:
        ids = [str(uuid.uuid4()) for _ in range(5)]
        for n, client_msg_id in enumerate(ids):
            await tab.send_json_to({"type": "message", "client_msg_id": client_msg_id, "text": f"part {n}"})
        acks = [await frame_of(tab, "ack", client_msg_id=client_msg_id) for client_msg_id in ids]
    texts = await run(
        lambda: list(
            Message.objects.filter(channel=webchat_channel).order_by("created_at", "pk").values_list("text", flat=True)
        )
    )
    assert texts == [f"part {n}" for n in range(5)]
    assert [a["id"] for a in acks] == sorted(a["id"] for a in acks)


async def test_an_operator_reply_reaches_the_open_tab_live_and_once(webchat_channel, alice):
    async with widget(webchat_channel) as tab:
        ack = await say(tab, "Hello?")
        conversation_id = await run(lambda: Message.objects.get(pk=ack["id"]).conversation_id)
        reply = await run(answer, conversation_id, "Hi! Alice here.", alice)
        frame = await frame_of(tab, "message")
        assert frame["message"]["id"] == reply.pk
        assert frame["message"]["from"] == "agent"
        assert frame["message"]["name"] == "Alice"
        assert frame["message"]["text"] == "Hi! Alice here."
        # The delivery is retried (the worker lost its ack): the tab still shows it once.
        await run(WebchatConnector(webchat_channel).send, reply, reply.address)
        assert await nothing_of(tab, "message")


async def test_a_tab_that_was_away_gets_everything_after_its_last_id_on_reconnect(webchat_channel, alice):
    async with widget(webchat_channel) as tab:
        first = await say(tab, "Anyone?")
        token = tab.welcome["token"]
    conversation_id = await run(lambda: Message.objects.get(pk=first["id"]).conversation_id)
    one = await run(answer, conversation_id, "Sorry for the wait.", alice)
    two = await run(answer, conversation_id, "Your parcel left today.", alice)
    async with widget(webchat_channel, token=token, after=first["id"] - 1, have=[first["id"]]) as tab:
        assert tab.welcome["new"] is False
        assert [m["id"] for m in said(tab.welcome["messages"])] == [one.pk, two.pk]
        assert await nothing_of(tab, "message")
    async with widget(webchat_channel, token=token, after=two.pk) as tab:
        assert tab.welcome["messages"] == []
    async with widget(webchat_channel, token=token) as tab:  # a new tab of the same browser: the history
        assert [m["text"] for m in said(tab.welcome["messages"])] == [
            "Anyone?",
            "Sorry for the wait.",
            "Your parcel left today.",
        ]


async def test_a_reply_queued_before_the_visitors_last_message_is_not_skipped_on_resume(webchat_channel, alice):
    async with widget(webchat_channel) as tab:
        hello = await say(tab, "Hello")
        conversation = await run(lambda: Message.objects.get(pk=hello["id"]).conversation)
        queued = await run(outbound.reply, conversation=conversation, text="One moment", by=alice)
        later = await say(tab, "Still there?")
        token = tab.welcome["token"]
    assert hello["id"] < queued.pk < later["id"]
    await run(outbound.deliver_message, message_id=queued.pk)  # nobody is connected
    async with widget(webchat_channel, token=token, after=hello["id"], have=[later["id"]]) as tab:
        assert [m["id"] for m in said(tab.welcome["messages"])] == [queued.pk]


async def test_a_reply_shown_before_its_send_was_recorded_still_becomes_delivered(webchat_channel, alice):
    async with widget(webchat_channel) as tab:
        hello = await say(tab, "Hello")
        conversation = await run(lambda: Message.objects.get(pk=hello["id"]).conversation)
        queued = await run(outbound.reply, conversation=conversation, text="One moment", by=alice)
        token = tab.welcome["token"]
    async with widget(webchat_channel, token=token, after=hello["id"]) as tab:
        assert [m["id"] for m in said(tab.welcome["messages"])] == [queued.pk]
        await tab.send_json_to({"type": "delivered", "ids": [queued.pk]})
        await tab.send_json_to({"type": "ping"})
        await frame_of(tab, "pong")
        # Not sent yet (unless a worker of the session took it meanwhile: then it is delivered already).
        assert (await run(Message.objects.get, pk=queued.pk)).status in ("queued", "sending", "delivered")
        await run(outbound.deliver_message, message_id=queued.pk)
        delivered = await run(wait_for, lambda: Message.objects.filter(pk=queued.pk, status="delivered").exists())
        assert delivered


async def test_delivered_and_read_acknowledgements_move_the_reply_forward(webchat_channel, alice):
    async with widget(webchat_channel) as tab:
        ack = await say(tab, "Hello?")
        conversation_id = await run(lambda: Message.objects.get(pk=ack["id"]).conversation_id)
        reply = await run(answer, conversation_id, "Hi!", alice)
        assert reply.status == Message.Status.SENT
        await frame_of(tab, "message")
        await tab.send_json_to({"type": "delivered", "ids": [reply.pk]})
        await tab.send_json_to({"type": "ping"})
        await frame_of(tab, "pong")
        assert (await run(Message.objects.get, pk=reply.pk)).status == Message.Status.DELIVERED
        await tab.send_json_to({"type": "read", "ids": [reply.pk]})
        await tab.send_json_to({"type": "ping"})
        await frame_of(tab, "pong")
        assert (await run(Message.objects.get, pk=reply.pk)).status == Message.Status.READ


async def test_a_visitors_other_tabs_show_what_they_wrote(webchat_channel):
    async with widget(webchat_channel) as first, widget(webchat_channel, token=first.welcome["token"]) as second:
        ack = await say(first, "Written in the first tab")
        frame = await frame_of(second, "message")
        assert frame["message"]["id"] == ack["id"]
        assert await nothing_of(first, "message")


# -- who may read what ---------------------------------------------------------------------------------


async def test_a_token_reads_only_its_own_conversation(webchat_channel, other_site):
    async with widget(webchat_channel) as mine:
        await say(mine, "My private order number is 1001")
        my_token = mine.welcome["token"]
        async with widget(webchat_channel) as theirs:
            assert theirs.welcome["messages"] == []
            await say(theirs, "Someone else")
            assert await nothing_of(mine, "message")
    # A forged token (another visitor id, the signature of mine) is a new visitor with nothing to read.
    signature = my_token.rpartition(":")[2]
    forged = signing.dumps({"c": webchat_channel.pk, "v": "v-" + "A" * 22}, salt=protocol.TOKEN_SALT)
    forged = forged.rsplit(":", 1)[0] + ":" + signature
    async with widget(webchat_channel, token=forged) as tab:
        assert tab.welcome["new"] is True
        assert tab.welcome["token"] != forged
        assert tab.welcome["messages"] == []
    # My token on another site's chat is not mine there.
    async with widget(other_site, token=my_token, origin="https://other.example.test") as tab:
        assert tab.welcome["new"] is True
        assert tab.welcome["messages"] == []


@pytest.mark.parametrize("origin", ["https://evil.example.test", "http://shop.example.test", ""])
async def test_sockets_from_origins_the_channel_does_not_allow_are_refused(webchat_channel, origin):
    headers = [(b"origin", origin.encode())] if origin else []
    communicator = WebsocketCommunicator(application, f"/ws/webchat/{webchat_channel.key}/", headers=headers)
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_socket_for_an_unknown_or_switched_off_channel_is_refused(webchat_channel):
    communicator = WebsocketCommunicator(
        application, "/ws/webchat/no-such-key/", headers=[(b"origin", ORIGIN.encode())]
    )
    assert not (await communicator.connect())[0]
    await run(lambda: type(webchat_channel).objects.filter(pk=webchat_channel.pk).update(is_active=False))
    from connectors.webchat import selectors

    selectors.forget_channels()
    communicator = WebsocketCommunicator(
        application, f"/ws/webchat/{webchat_channel.key}/", headers=[(b"origin", ORIGIN.encode())]
    )
    assert not (await communicator.connect())[0]


async def test_a_widget_socket_never_hears_operators_events(webchat_channel, alice):
    from inbox.realtime import publish as realtime

    async with widget(webchat_channel) as tab:
        ack = await say(tab, "Hello")
        conversation_id = await run(lambda: Message.objects.get(pk=ack["id"]).conversation_id)
        await run(
            outbound.add_note,
            conversation=await run(Conversation.objects.get, pk=conversation_id),
            text="VIP, careful",
            by=alice,
        )
        await run(realtime.conversation_changed, conversation_id)
        assert await tab.receive_nothing(timeout=0.6)
    async with widget(webchat_channel, token=tab.welcome["token"]) as again:
        assert [m["text"] for m in again.welcome["messages"]] == ["Hello"]


# -- bad input and limits --------------------------------------------------------------------------------


async def test_frames_before_hello_are_refused_without_dropping_the_socket(webchat_channel):
    async with widget(webchat_channel, hello=False) as tab:
        await tab.send_json_to({"type": "message", "client_msg_id": str(uuid.uuid4()), "text": "hi"})
        error = await frame_of(tab, "error")
        assert error["code"] == "hello_first"
        await tab.send_json_to({"type": "hello"})
        assert (await frame_of(tab, "welcome"))["new"] is True


async def test_garbage_and_oversized_frames_get_clear_errors_and_the_socket_stays(webchat_channel):
    async with widget(webchat_channel) as tab:
        await tab.send_to(text_data="not json")
        assert (await frame_of(tab, "error"))["code"] == "bad_json"
        await tab.send_json_to(["a", "list"])
        assert (await frame_of(tab, "error"))["code"] == "bad_json"
        await tab.send_json_to({"type": "dance"})
        assert (await frame_of(tab, "error"))["code"] == "unknown_type"
        await tab.send_json_to({"type": "message", "client_msg_id": "x", "text": "hi"})
        assert (await frame_of(tab, "error"))["code"] == "bad_client_id"
        client_msg_id = str(uuid.uuid4())
        await tab.send_json_to({"type": "message", "client_msg_id": client_msg_id, "text": "a" * 4001})
        error = await frame_of(tab, "error")
        assert (error["code"], error["client_msg_id"]) == ("too_long", client_msg_id)
        await tab.send_to(text_data='{"type": "message", "text": "' + "a" * 40_000 + '"}')
        assert (await frame_of(tab, "error"))["code"] == "too_large"
        await tab.send_json_to({"type": "message", "client_msg_id": str(uuid.uuid4()), "text": "   "})
        assert (await frame_of(tab, "error"))["code"] == "empty"
        await tab.send_json_to({"type": "message", "client_msg_id": str(uuid.uuid4()), "text": "<b>bold</b>"})
        ack = await frame_of(tab, "ack")
    stored = await run(Message.objects.get, pk=ack["id"])
    assert (stored.text, stored.html) == ("<b>bold</b>", "")
    assert await run(Message.objects.filter(channel=webchat_channel).count) == 1


async def test_past_the_per_visitor_limit_a_message_is_refused_with_when_to_retry(webchat_channel, settings):
    settings.PARLEY_WEBCHAT_MESSAGES_PER_MINUTE = 3
    async with widget(webchat_channel) as tab:
        for n in range(3):
            await say(tab, f"message {n}")
        client_msg_id = str(uuid.uuid4())
        await tab.send_json_to({"type": "message", "client_msg_id": client_msg_id, "text": "one too many"})
        error = await frame_of(tab, "error")
        assert (error["code"], error["client_msg_id"]) == ("rate_limited", client_msg_id)
        assert 1 <= error["retry_after"] <= 60
        async with widget(webchat_channel) as other_visitor:  # another visitor has their own budget
            await say(other_visitor, "hello")
    assert not await run(Message.objects.filter(text="one too many").exists)


async def test_past_the_per_address_limit_new_visitors_are_refused(webchat_channel, settings):
    settings.PARLEY_WEBCHAT_VISITORS_PER_MINUTE = 2
    async with widget(webchat_channel) as first, widget(webchat_channel):
        async with widget(webchat_channel, hello=False) as third:
            await third.send_json_to({"type": "hello"})
            assert (await frame_of(third, "error"))["code"] == "rate_limited"
        async with widget(webchat_channel, token=first.welcome["token"]) as returning:  # known visitors still come in
            assert returning.welcome["new"] is False


async def test_past_the_per_address_limit_messages_of_all_its_visitors_are_refused(webchat_channel, settings):
    settings.PARLEY_WEBCHAT_ADDRESS_MESSAGES_PER_MINUTE = 2
    async with widget(webchat_channel) as one, widget(webchat_channel) as two:
        await say(one, "first")
        await say(two, "second")
        await two.send_json_to({"type": "message", "client_msg_id": str(uuid.uuid4()), "text": "third"})
        assert (await frame_of(two, "error"))["code"] == "rate_limited"


# -- typing ----------------------------------------------------------------------------------------------


async def test_operators_viewing_the_conversation_see_the_visitor_typing(webchat_channel, alice):
    from inbox.realtime.consumers import OperatorConsumer

    async with widget(webchat_channel) as tab:
        ack = await say(tab, "Hello")
        conversation_id = await run(lambda: Message.objects.get(pk=ack["id"]).conversation_id)
        operator = WebsocketCommunicator(OperatorConsumer.as_asgi(), "/ws/inbox/")
        operator.scope["user"] = alice
        assert (await operator.connect())[0]
        try:
            await operator.send_json_to({"type": "view", "conversation": conversation_id})
            await frame_of(operator, "viewing")
            await tab.send_json_to({"type": "typing"})
            frame = await frame_of(operator, "typing")
            assert frame["conversation"] == conversation_id
        finally:
            await operator.disconnect()


async def test_the_visitor_sees_the_operator_typing(webchat_channel, alice):
    from inbox.realtime.consumers import OperatorConsumer

    async with widget(webchat_channel) as tab:
        ack = await say(tab, "Hello")
        conversation_id = await run(lambda: Message.objects.get(pk=ack["id"]).conversation_id)
        async with widget(webchat_channel) as stranger:
            operator = WebsocketCommunicator(OperatorConsumer.as_asgi(), "/ws/inbox/")
            operator.scope["user"] = alice
            assert (await operator.connect())[0]
            try:
                await operator.send_json_to({"type": "view", "conversation": conversation_id})
                await frame_of(operator, "viewing")
                await operator.send_json_to({"type": "typing"})
                assert (await frame_of(tab, "typing"))["name"] == "Alice"
                assert await nothing_of(stranger, "typing")
            finally:
                await operator.disconnect()


@pytest.mark.parametrize(
    ("text", "replies"),
    [
        ("Did you mean:\n1. Delivery\n2. Returns\nReply 1 or 2, or tell me more.", ["1", "2"]),
        ("منظورتان این بود؟\n۱. ارسال\n۲. بازگشت\nبا ۱ یا ۲ پاسخ دهید یا بیشتر توضیح دهید.", ["۱", "۲"]),
    ],
)
async def test_the_bots_did_you_mean_comes_with_buttons_that_answer_as_the_bot_expects(webchat_channel, text, replies):
    async with widget(webchat_channel) as tab:
        ack = await say(tab, "my parcel came back")
        conversation = await run(lambda: Message.objects.get(pk=ack["id"]).conversation)

        def ask() -> None:
            message = outbound.reply(
                conversation=conversation,
                text=text,
                by=None,
                sender=Message.Sender.BOT,
                metadata={"bot": {"action": "clarify", "offered": [1, 2]}},
            )
            outbound.deliver_message(message_id=message.pk)

        await run(ask)
        frame = (await frame_of(tab, "message"))["message"]
        assert frame["from"] == "bot"
        assert [o["reply"] for o in frame["options"]] == replies
        assert len(frame["options"][0]["label"]) > 3


async def test_an_operators_session_cookie_opens_nothing_on_the_widget_socket(webchat_channel, alice, bob):
    from django.test import Client

    from tests.conftest import PASSWORD

    async with widget(webchat_channel) as visitor:
        await say(visitor, "private")

    def session_cookie(username: str) -> bytes:
        client = Client()
        client.login(username=username, password=PASSWORD)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    for username in ("bob", "alice"):
        cookie = await run(session_cookie, username)
        communicator = WebsocketCommunicator(
            application,
            f"/ws/webchat/{webchat_channel.key}/",
            headers=[(b"origin", ORIGIN.encode()), (b"cookie", cookie)],
        )
        assert (await communicator.connect())[0]
        await communicator.send_json_to({"type": "hello"})
        welcome = await frame_of(communicator, "welcome")
        assert (welcome["new"], welcome["messages"]) == (True, [])
        await communicator.disconnect()


async def test_choices_come_as_buttons_and_a_tap_comes_back_with_the_choice_id(webchat_channel):
    choices = [{"id": "csat:5", "title": "😀 5"}, {"id": "csat:1", "title": "😞 1"}]
    async with widget(webchat_channel) as tab:
        ack = await say(tab, "thanks, that was all")
        conversation = await run(lambda: Message.objects.get(pk=ack["id"]).conversation)

        def ask() -> None:
            message = outbound.reply(
                conversation=conversation,
                text="How would you rate our help?",
                by=None,
                sender=Message.Sender.SYSTEM,
                metadata={"choices": choices},
            )
            outbound.deliver_message(message_id=message.pk)

        await run(ask)
        frame = (await frame_of(tab, "message"))["message"]
        assert frame["options"] == [
            {"label": "😀 5", "reply": "😀 5", "choice": "csat:5"},
            {"label": "😞 1", "reply": "😞 1", "choice": "csat:1"},
        ]

        client_msg_id = str(uuid.uuid4())
        await tab.send_json_to({"type": "message", "client_msg_id": client_msg_id, "text": "😀 5", "choice": "csat:5"})
        tapped = await frame_of(tab, "ack", client_msg_id=client_msg_id)
        stored = await run(lambda: Message.objects.get(pk=tapped["id"]))
        assert stored.text == "😀 5"
        assert stored.metadata["choice"] == "csat:5"

        forged = str(uuid.uuid4())
        await tab.send_json_to({"type": "message", "client_msg_id": forged, "text": "x", "choice": "<script>"})
        error = await frame_of(tab, "error")
        assert error["code"] == "bad_choice"
