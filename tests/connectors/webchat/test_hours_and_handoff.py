"""What the visitor is told about people: when they are back (the team's business hours and holidays,
kept by the bot app), and who joined the conversation ("Alice joined", her name on her messages)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from channels.db import database_sync_to_async

from bot.models import BusinessHours, Holiday, OpeningInterval
from inbox.models import Message, Operator
from inbox.services import channels, conversations
from inbox.transport import ConfigurationError
from tests.connectors.webchat.test_consumer import answer, frame_of, say, widget

pytestmark = pytest.mark.django_db(transaction=True)

ZONE = "Europe/Kyiv"


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


async def run(func, *args, **kwargs):
    return await database_sync_to_async(func)(*args, **kwargs)


def closed_until_the_day_after_tomorrow(team) -> datetime:
    """Open around the clock every day, but today and tomorrow are holidays: back the day after, 00:00."""
    team.timezone = ZONE
    team.save(update_fields=["timezone"])
    hours = BusinessHours.objects.create(team=team)
    for weekday in range(7):
        OpeningInterval.objects.create(hours=hours, weekday=weekday, opens=time(0), closes=time(0))
    today = datetime.now(ZoneInfo(ZONE)).date()
    for day in (today, today + timedelta(days=1)):
        Holiday.objects.create(hours=hours, date=day)
    return datetime.combine(today + timedelta(days=2), time(0), tzinfo=ZoneInfo(ZONE))


def online(operator: Operator) -> None:
    conversations.set_presence(operator=operator, presence=Operator.Presence.ONLINE)


async def test_outside_business_hours_the_widget_is_told_when_people_are_back(webchat_channel, alice):
    await run(online, alice)  # someone is signed in, but the team is closed (a holiday)
    back = await run(closed_until_the_day_after_tomorrow, webchat_channel.team)
    async with widget(webchat_channel) as tab:
        assert tab.welcome["online"] is False
        assert tab.welcome["hours"]["open"] is False
        assert datetime.fromisoformat(tab.welcome["hours"]["back"]) == back


async def test_within_business_hours_with_someone_online_the_widget_is_online(webchat_channel, alice):
    await run(online, alice)
    async with widget(webchat_channel) as tab:
        assert tab.welcome["hours"] == {"open": True, "back": None}  # no hours kept: open around the clock
        assert tab.welcome["online"] is True


async def test_the_visitor_sees_alice_join_before_her_first_message(webchat_channel, alice):
    async with widget(webchat_channel) as tab:
        ack = await say(tab, "I need a person")
        conversation_id = (await run(Message.objects.get, pk=ack["id"])).conversation_id
        reply = await run(answer, conversation_id, "Hi, I am here.", alice)
        joined = (await frame_of(tab, "system"))["message"]
        assert joined["from"] == "system"
        assert joined["event"] == "joined"
        assert joined["name"] == "Alice"
        assert joined["id"] < reply.pk  # in the widget's (id) order she joins, then writes
        message = (await frame_of(tab, "message"))["message"]
        assert message["id"] == reply.pk
        assert message["name"] == "Alice"
    # A tab that comes back later gets the line with the history, once.
    async with widget(webchat_channel, token=tab.welcome["token"], after=0) as again:
        shown = [(m["from"], m.get("event"), m["id"]) for m in again.welcome["messages"]]
        assert shown == [("visitor", None, ack["id"]), ("system", "joined", joined["id"]), ("agent", None, reply.pk)]


async def test_a_teammate_assigning_the_conversation_shows_who_joined(webchat_channel, alice, support):
    carol = await run(Operator.objects.create_user, "carol", "carol@example.test", "pw", display_name="Carol Jones")
    await run(carol.teams.add, support)
    async with widget(webchat_channel) as tab:
        ack = await say(tab, "Hello")
        conversation = (await run(Message.objects.select_related("conversation").get, pk=ack["id"])).conversation
        await run(conversations.assign_conversation, conversation=conversation, operator=carol, by=alice)
        joined = (await frame_of(tab, "system"))["message"]
        assert joined["event"] == "joined"
        assert joined["name"] == "Carol Jones"


async def test_a_channel_can_show_operators_by_their_first_name_only(webchat_channel, alice, support):
    alice.display_name = "Alice Smith"
    await run(alice.save, update_fields=["display_name"])
    webchat_channel.settings = {**webchat_channel.settings, "agent_names": "first"}
    await run(webchat_channel.save, update_fields=["settings"])
    async with widget(webchat_channel) as tab:
        ack = await say(tab, "Hello")
        conversation_id = (await run(Message.objects.get, pk=ack["id"])).conversation_id
        await run(answer, conversation_id, "Hi!", alice)
        joined = (await frame_of(tab, "system"))["message"]
        message = (await frame_of(tab, "message"))["message"]
    assert joined["name"] == "Alice"
    assert message["name"] == "Alice"
    assert "Smith" not in str(joined) + str(message)


def test_a_channels_name_style_is_checked_when_it_is_added(support):
    with pytest.raises(ConfigurationError, match="agent_names"):
        channels.create_channel(
            kind="webchat",
            name="Chat",
            team=support,
            channel_settings={"allowed_origins": "https://shop.example.test", "agent_names": "nickname"},
        )
