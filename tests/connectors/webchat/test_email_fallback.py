"""An operator's reply the visitor did not see in the widget goes to the email they left, over real SMTP.

The widget's socket (real ASGI routing, channel layer and Redis), the team's email channel sending to
an aiosmtpd peer (tests/fakes/smtp.py), the sweep the scheduler runs every minute.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from connectors.webchat import fallback, sessions
from inbox.models import Conversation, Message
from inbox.services import channels, outbound
from tests.conftest import wait_for
from tests.connectors.webchat.conftest import ORIGIN
from tests.connectors.webchat.test_consumer import answer, frame_of, widget
from tests.fakes.smtp import smtp_peer  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def mailbox(support, smtp_peer):  # noqa: F811
    return channels.create_channel(
        kind="email",
        name="Shop mail",
        team=support,
        channel_settings={"address": "support@shop.example.test", **smtp_peer.settings()},
    )


async def run(func, *args, **kwargs):
    return await database_sync_to_async(func)(*args, **kwargs)


async def visitor_writes(tab, text: str, page: str = f"{ORIGIN}/orders/42?tab=2#top") -> int:
    client_msg_id = str(uuid.uuid4())
    await tab.send_json_to({"type": "message", "client_msg_id": client_msg_id, "text": text, "page": page})
    ack = await frame_of(tab, "ack", client_msg_id=client_msg_id)
    return int(ack["id"])


async def leaves_email(tab, email: str = "ann@customer.test") -> None:
    await tab.send_json_to({"type": "identify", "email": email})
    assert (await frame_of(tab, "identified"))["verified"] is False


def sweep(minutes: float) -> list[int]:
    return fallback.email_unseen_replies(now=timezone.now() + timedelta(minutes=minutes))


def send(mail_id: int) -> Message:
    outbound.deliver_message(message_id=mail_id)
    return wait_for(lambda: Message.objects.exclude(status__in=["queued", "sending"]).filter(pk=mail_id).first())


async def test_a_reply_the_visitor_did_not_see_goes_to_their_email_in_the_same_conversation(
    webchat_channel,
    mailbox,
    alice,
    smtp_peer,  # noqa: F811
):
    async with widget(webchat_channel) as tab:
        first = await visitor_writes(tab, "Where is my order?")
        await leaves_email(tab)
    conversation_id = (await run(Message.objects.get, pk=first)).conversation_id
    reply = await run(answer, conversation_id, "It ships tomorrow morning.", alice)

    mails = await run(sweep, 2)  # the visitor's tabs are gone: no need to wait the full five minutes

    assert len(mails) == 1
    mail = await run(send, mails[0])
    assert mail.status == "sent"
    assert mail.conversation_id == conversation_id  # the same thread, for operators too
    assert mail.channel_id == mailbox.pk
    assert mail.address == "ann@customer.test"
    received = (await run(smtp_peer.wait_for, 1))[0]
    assert received.rcpt_tos == ["ann@customer.test"]
    message = received.message
    body = message.get_body(("plain",)).get_content()
    assert "It ships tomorrow morning." in body
    assert f"{ORIGIN}/orders/42?tab=2#parley-chat" in body  # back to the chat, on the page they were on
    assert "Alice" in str(message["From"])
    assert "Website chat" in str(message["Subject"])
    assert f"[#c{conversation_id}]" in str(message["Subject"])
    assert f"+c{conversation_id}@" in str(message["Reply-To"])  # their answer comes back to this thread
    reply = await run(Message.objects.get, pk=reply.pk)
    assert reply.metadata["webchat_emailed"] == mail.pk
    assert await run(sweep, 10) == []  # once


async def test_a_reply_read_in_the_widget_is_never_emailed(webchat_channel, mailbox, alice, smtp_peer):  # noqa: F811
    async with widget(webchat_channel) as tab:
        first = await visitor_writes(tab, "Hello?")
        await leaves_email(tab)
        conversation_id = (await run(Message.objects.get, pk=first)).conversation_id
        reply = await run(answer, conversation_id, "Hello! How can I help?", alice)
        await frame_of(tab, "message")
        await tab.send_json_to({"type": "read", "ids": [reply.pk]})
        await tab.send_json_to({"type": "ping"})
        await frame_of(tab, "pong")  # frames are handled in order: the receipt is stored
        assert (await run(Message.objects.get, pk=reply.pk)).status == Message.Status.READ
    assert await run(sweep, 30) == []
    assert smtp_peer.messages == []


async def test_a_visitor_with_the_widget_open_gets_the_full_time_to_read_first(
    webchat_channel,
    mailbox,
    alice,
    smtp_peer,  # noqa: F811
):
    async with widget(webchat_channel) as tab:
        first = await visitor_writes(tab, "Hello?")
        await leaves_email(tab)
        conversation_id = (await run(Message.objects.get, pk=first)).conversation_id
        await run(answer, conversation_id, "Give me a minute to check.", alice)
        await frame_of(tab, "message")  # shown (delivered), but the widget is closed: not read
        assert await run(sweep, 2) == []  # connected: five minutes to read it
        mails = await run(sweep, 6)
    assert len(mails) == 1


async def test_the_email_the_visitor_leaves_later_still_gets_the_replies_they_missed(
    webchat_channel,
    mailbox,
    alice,
    smtp_peer,  # noqa: F811
):
    async with widget(webchat_channel) as tab:
        first = await visitor_writes(tab, "Do you ship to Kyiv?")
    conversation_id = (await run(Message.objects.get, pk=first)).conversation_id
    await run(answer, conversation_id, "Yes, in three days.", alice)
    await run(answer, conversation_id, "And delivery is free.", alice)
    assert await run(sweep, 2) == []  # no email yet: nothing to do
    async with widget(webchat_channel, token=tab.welcome["token"], after=0) as tab:
        await leaves_email(tab)
    mails = await run(sweep, 3)
    assert len(mails) == 1  # one mail with both replies
    await run(send, mails[0])
    body = (await run(smtp_peer.wait_for, 1))[0].message.get_body(("plain",)).get_content()
    assert "Yes, in three days." in body
    assert "And delivery is free." in body


async def test_nothing_goes_without_the_teams_email_channel(webchat_channel, sales, alice, smtp_peer):  # noqa: F811
    # Another team's mailbox is never used for this team's chat.
    await run(
        channels.create_channel,
        kind="email",
        name="Sales mail",
        team=sales,
        channel_settings={"address": "sales@shop.example.test", **smtp_peer.settings()},
    )
    async with widget(webchat_channel) as tab:
        first = await visitor_writes(tab, "Hello?")
        await leaves_email(tab)
    await run(answer, (await run(Message.objects.get, pk=first)).conversation_id, "Hi!", alice)
    assert await run(sweep, 30) == []


async def test_the_link_in_the_mail_never_leaves_the_sites_own_origins(
    webchat_channel,
    mailbox,
    alice,
    smtp_peer,  # noqa: F811
):
    async with widget(webchat_channel) as tab:
        first = await visitor_writes(tab, "Hello?", page="https://phish.example.test/login")
        await leaves_email(tab)
    conversation_id = (await run(Message.objects.get, pk=first)).conversation_id
    await run(answer, conversation_id, "Hi!", alice)
    mails = await run(sweep, 2)
    await run(send, mails[0])
    body = (await run(smtp_peer.wait_for, 1))[0].message.get_body(("plain",)).get_content()
    assert "phish" not in body
    assert f"{ORIGIN}/#parley-chat" in body


async def test_the_welcome_says_whether_an_email_form_can_work(webchat_channel, smtp_peer):  # noqa: F811
    async with widget(webchat_channel) as tab:
        assert tab.welcome["settings"]["offline_form"] == "none"  # no mailbox: no promise of an email
    await run(
        channels.create_channel,
        kind="email",
        name="Shop mail",
        team=webchat_channel.team,
        channel_settings={"address": "support@shop.example.test", **smtp_peer.settings()},
    )
    sessions.forget_mailboxes()  # a web process notices within MAILBOX_CACHE_SECONDS
    async with widget(webchat_channel) as tab:
        assert tab.welcome["settings"]["offline_form"] == "email"
        assert tab.welcome["settings"]["prechat_email"] == "off"


def test_a_reply_to_a_given_address_is_still_checked(db, webchat_channel, mailbox, support):
    from customers.services import resolve_customer
    from inbox.services.conversations import ReplyRefused

    customer, _ = resolve_customer(kind="webchat", value="v-" + "a" * 22)
    conversation = Conversation.objects.create(
        customer=customer, team=support, last_channel=webchat_channel, last_message_at=timezone.now()
    )
    with pytest.raises(ReplyRefused, match="not an address"):
        outbound.reply(conversation=conversation, text="Hi", by=None, channel=mailbox, address="not an address")
