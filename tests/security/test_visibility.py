"""Who sees what of a customer's conversations of other teams: one rule on every read path.

The customer Dora wrote to Sales first (conversation "sales_talk", resolved a year ago), then to
Support ("support_talk", open): Alice (Support) replied and left a private note; assigning her
left an activity entry. Bob (Sales) opens Dora's thread through his own conversation. By default
(``PARLEY_TEAM_ISOLATION=shared``) he reads Dora's messages and our replies from Support's
conversation, marked "Support", and never Support's note or activity; in strict isolation he reads
nothing of it. Staff read everything. See docs/security.md, "Who sees what".
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from contextlib import asynccontextmanager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import reverse
from django.utils import timezone

from inbox import visibility
from inbox.models import Channel, Conversation, Message, Operator
from inbox.realtime.consumers import OperatorConsumer
from inbox.selectors import search
from inbox.selectors.conversations import customer_panel, message_for, readable_message_for, thread_page
from inbox.selectors.cursors import encode_cursor
from inbox.services import channels, conversations, outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundAttachment, InboundMessage
from reports import rollups
from reports import selectors as reports
from tests.conftest import ROOT

NOTE = "Refund approved internally, do not tell the customer yet"
ASKED = "My parcel is late, order 4711"
ANSWERED = "We are on it, a new parcel ships today"
EARLIER = "I want to upgrade my plan"


@pytest.fixture(params=["shared", "strict"])
def mode(request, settings) -> str:
    settings.PARLEY_TEAM_ISOLATION = request.param
    return request.param


@pytest.fixture
def shared(settings) -> None:
    settings.PARLEY_TEAM_ISOLATION = "shared"


@pytest.fixture
def strict(settings) -> None:
    settings.PARLEY_TEAM_ISOLATION = "strict"


@pytest.fixture
def sales_line(sales) -> Channel:
    return channels.create_channel(kind="simulator", name="Sales SMS", team=sales, channel_settings={"medium": "sms"})


def write(channel: Channel, text: str, n: int, **extra: Any) -> Message:
    inbound = InboundMessage(provider_id=f"dora-{n}", address="+15005550006", text=text, name="Dora", **extra)
    return receive_message(channel=channel, inbound=inbound)


@pytest.fixture
def dora(sms, sales_line, alice, bob) -> SimpleNamespace:
    earlier = write(sales_line, EARLIER, 1)
    sales_talk = Conversation.objects.get(pk=earlier.conversation_id)
    outbound.reply(conversation=sales_talk, text="Done, enjoy the business plan", by=bob)
    conversations.resolve_conversation(conversation=sales_talk, by=bob)
    Conversation.objects.filter(pk=sales_talk.pk).update(resolved_at=timezone.now() - timedelta(days=365))
    attachment = InboundAttachment(filename="box.png", content_type="image/png", content=b"\x89PNG fake")
    asked = write(sms, ASKED, 2, attachments=(attachment,))
    support_talk = Conversation.objects.get(pk=asked.conversation_id)
    assert support_talk.pk != sales_talk.pk
    conversations.assign_conversation(conversation=support_talk, operator=alice, by=alice)
    answered = outbound.reply(conversation=support_talk, text=ANSWERED, by=alice)
    note = outbound.add_note(conversation=support_talk, text=NOTE, by=alice)
    activity = support_talk.messages.filter(kind=Message.Kind.ACTIVITY).first()
    assert activity is not None
    return SimpleNamespace(
        sales_talk=sales_talk,
        support_talk=support_talk,
        customer=support_talk.customer,
        asked=asked,
        answered=answered,
        note=note,
        activity=activity,
        attachment=asked.attachments.get(),
    )


def texts(thread) -> list[str]:
    return [message.text for message in thread.messages]


def ids(messages) -> set[int]:
    return {message.pk for message in messages}


# -- the thread and "older messages" -------------------------------------------------------------------


def test_by_default_the_thread_shows_another_teams_customer_messages_and_replies_but_never_its_note(shared, dora, bob):
    thread = thread_page(operator=bob, conversation_id=dora.sales_talk.pk)

    shown = ids(thread.messages)
    assert {dora.asked.pk, dora.answered.pk} <= shown
    assert dora.note.pk not in shown
    assert dora.activity.pk not in shown
    assert NOTE not in texts(thread)


def test_in_strict_isolation_the_thread_shows_nothing_of_another_teams_conversation(strict, dora, bob):
    thread = thread_page(operator=bob, conversation_id=dora.sales_talk.pk)

    assert {message.conversation_id for message in thread.messages} == {dora.sales_talk.pk}
    assert EARLIER in texts(thread)


def test_staff_see_every_teams_messages_notes_and_activity_in_both_modes(mode, dora, admin):
    thread = thread_page(operator=admin, conversation_id=dora.sales_talk.pk)

    assert {dora.asked.pk, dora.answered.pk, dora.note.pk, dora.activity.pk} <= ids(thread.messages)


def test_the_thread_page_marks_another_teams_messages_with_its_team_and_offers_no_action_on_them(
    client, shared, dora, bob
):
    client.force_login(bob)
    page = client.get(reverse("inbox:conversation", args=[dora.sales_talk.pk])).content.decode()

    assert ASKED in page
    assert ANSWERED in page
    assert NOTE not in page
    answered = page[page.index(f'id="msg-{dora.answered.pk}"') :]
    answered = answered[: answered.index("</li>")]
    assert '<span class="badge team"' in answered
    assert ">Support</span>" in answered
    assert reverse("bot:make_example", args=[dora.answered.pk]) not in answered
    # Bob's own conversation's messages carry no team mark.
    earlier = page[page.index(EARLIER) - 1500 : page.index(EARLIER)]
    assert "badge team" not in earlier[earlier.rindex("<li") :]


def test_the_thread_page_of_the_strict_mode_leaves_out_another_teams_messages(client, strict, dora, bob):
    client.force_login(bob)
    page = client.get(reverse("inbox:conversation", args=[dora.sales_talk.pk])).content.decode()

    assert EARLIER in page
    for text in (ASKED, ANSWERED, NOTE):
        assert text not in page


def test_older_messages_follow_the_same_rule(client, mode, dora, bob, admin):
    # A cursor after everything: the "older" page then holds the whole timeline.
    after_all = encode_cursor(timezone.now() + timedelta(minutes=1), 10**9)
    url = reverse("inbox:older", args=[dora.sales_talk.pk])

    client.force_login(bob)
    page = client.get(url, {"before": after_all}).content.decode()
    assert EARLIER in page
    assert NOTE not in page
    assert (ASKED in page) is (mode == "shared")

    client.force_login(admin)
    assert NOTE in client.get(url, {"before": after_all}).content.decode()


def test_another_teams_conversation_itself_stays_closed_to_the_operator(client, mode, dora, bob):
    client.force_login(bob)

    assert client.get(reverse("inbox:conversation", args=[dora.support_talk.pk])).status_code == 404
    assert client.get(reverse("inbox:older", args=[dora.support_talk.pk])).status_code == 404


def test_a_customers_attachment_from_another_team_opens_only_where_the_thread_shows_it(client, mode, dora, bob):
    client.force_login(bob)
    response = client.get(reverse("inbox:attachment", args=[dora.attachment.pk]))

    assert response.status_code == (200 if mode == "shared" else 404)


def test_reading_one_message_by_id_follows_the_rule_and_acting_on_it_needs_the_team(mode, dora, bob):
    # What the recording view reads: another team's call or message where the thread shows it.
    if mode == "shared":
        assert readable_message_for(operator=bob, message_id=dora.asked.pk) == dora.asked
    else:
        with pytest.raises(Message.DoesNotExist):
            readable_message_for(operator=bob, message_id=dora.asked.pk)
    with pytest.raises(Message.DoesNotExist):
        readable_message_for(operator=bob, message_id=dora.note.pk)
    with pytest.raises(Message.DoesNotExist):  # retry, resend, examples: only on the team's own
        message_for(operator=bob, message_id=dora.asked.pk)


def test_a_team_that_has_no_conversation_with_the_customer_reads_nothing_of_them(shared, dora, sales_line):
    stranger_team = type(sales_line.team).objects.create(name="Billing")
    stranger = Operator.objects.create_user("erin", "erin@example.test", "x")
    stranger.teams.add(stranger_team)

    assert not visibility.readable_messages(stranger).filter(customer=dora.customer).exists()
    assert search.search_messages(operator=stranger, query="parcel").hits == []


# -- the predicate and the queryset are the same rule ---------------------------------------------------------


def test_the_websockets_predicate_agrees_with_the_querysets_filter_on_every_kind_of_entry(mode, dora, bob, admin):
    for direction in Message.Direction.values:
        for kind in Message.Kind.values:
            Message.objects.create(
                conversation=dora.support_talk,
                customer=dora.customer,
                kind=kind,
                direction=direction,
                sender=Message.Sender.SYSTEM,
                text=f"{kind}/{direction}",
                created_at=timezone.now(),
            )
    for reader in (bob, admin):
        readable = ids(visibility.readable_messages(reader).filter(customer=dora.customer))
        for message in Message.objects.filter(customer=dora.customer).select_related("conversation"):
            expected = visibility.may_read(
                reader, team_id=message.conversation.team_id, kind=message.kind, direction=message.direction
            )
            assert (message.pk in readable) is expected, (reader, message.kind, message.direction)


# -- the customer panel and the profile ----------------------------------------------------------------------


def test_the_customer_panel_lists_another_teams_conversation_without_a_link_or_not_at_all(client, mode, dora, bob):
    panel = customer_panel(operator=bob, customer_id=dora.customer.pk)

    listed = {conversation.pk for conversation in panel.conversations}
    assert dora.sales_talk.pk in listed
    assert (dora.support_talk.pk in listed) is (mode == "shared")
    assert panel.openable == {dora.sales_talk.pk}

    client.force_login(bob)
    page = client.get(reverse("inbox:conversation", args=[dora.sales_talk.pk])).content.decode()
    assert f'href="/c/{dora.support_talk.pk}/"' not in page


def test_the_profile_lists_another_teams_conversation_with_its_team_or_not_at_all(client, mode, dora, bob, admin):
    client.force_login(bob)
    page = client.get(reverse("customers:profile", args=[dora.customer.pk])).content.decode()

    assert f'href="/c/{dora.sales_talk.pk}/"' in page
    assert f'href="/c/{dora.support_talk.pk}/"' not in page
    if mode == "shared":
        assert f"Conversation #{dora.support_talk.pk}" in page
        assert "Handled by another team." in page
        assert ANSWERED in page  # its last message: our reply, which the thread shows too
    else:
        assert f"Conversation #{dora.support_talk.pk}" not in page
        assert "Handled by another team." not in page
        assert ANSWERED not in page
    assert NOTE not in page

    client.force_login(admin)
    assert (
        f'href="/c/{dora.support_talk.pk}/"'
        in client.get(reverse("customers:profile", args=[dora.customer.pk])).content.decode()
    )


def test_the_customer_list_counts_only_the_conversations_the_profile_lists(client, mode, dora, bob):
    client.force_login(bob)
    response = client.get(reverse("customers:list"))

    (row,) = response.context["page"].customers
    assert row.conversation_count == (2 if mode == "shared" else 1)


# -- search ---------------------------------------------------------------------------------------------------


def test_search_finds_another_teams_customer_message_marked_with_its_team_and_opens_it_in_my_conversation(
    client, shared, dora, bob
):
    (hit,) = search.search_messages(operator=bob, query="parcel 4711").hits

    assert hit.message.pk == dora.asked.pk
    assert hit.other_team == "Support"
    assert hit.conversation_id == dora.sales_talk.pk

    client.force_login(bob)
    page = client.get(reverse("inbox:search"), {"q": "parcel"}).content.decode()
    assert f'href="/c/{dora.sales_talk.pk}/#msg-{dora.asked.pk}"' in page
    assert ">Support</span>" in page


def test_search_never_finds_another_teams_private_note(mode, dora, bob, admin):
    assert search.search_messages(operator=bob, query="refund approved").hits == []
    assert [hit.message.pk for hit in search.search_messages(operator=admin, query="refund approved").hits] == [
        dora.note.pk
    ]


def test_in_strict_isolation_search_finds_nothing_of_another_teams_conversation(strict, dora, bob):
    assert search.search_messages(operator=bob, query="parcel").hits == []
    assert [hit.message.pk for hit in search.search_messages(operator=bob, query="upgrade").hits]


# -- reports -------------------------------------------------------------------------------------------------


def test_reports_count_only_the_operators_teams_conversations_in_both_modes(mode, dora, bob, sales_line):
    # Dora writes on the Sales line while Support's conversation is open: the message is Support's work.
    write(sales_line, "Also, can I pay by invoice?", 3)
    rollups.rebuild()  # what the worker's refresh writes after the events (reports read rollups)
    since, until = reports.period(7)
    report = reports.channel_report(operator=bob, since=since, until=until)

    assert [row.name for row in report.rows] == ["Sales SMS"]
    (row,) = report.rows
    assert row.inbound == 1  # the first message, in Bob's conversation; not the one in Support's
    assert row.outbound_people == 1


# -- the websocket ------------------------------------------------------------------------------------------


@asynccontextmanager
async def watching(operator: Operator, conversation: Conversation):
    """A socket of ``operator`` showing the thread of ``conversation``."""
    communicator = WebsocketCommunicator(OperatorConsumer.as_asgi(), "/ws/inbox/")
    communicator.scope["user"] = operator
    connected, _ = await communicator.connect()
    assert connected
    try:
        await communicator.send_json_to({"type": "view", "conversation": conversation.pk})
        await frames_until(communicator, lambda f: isinstance(f, dict) and f.get("type") == "viewing")
        yield communicator
    finally:
        await communicator.disconnect()
        from django.db import connections

        await database_sync_to_async(connections.close_all)()


async def frames_until(communicator: WebsocketCommunicator, wanted: Any, wait: float = 3.0) -> Any:
    async with asyncio.timeout(wait):
        while True:
            raw = await communicator.receive_from(timeout=wait)
            frame = json.loads(raw) if raw.startswith("{") else raw
            if wanted(frame):
                return frame


async def never(communicator: WebsocketCommunicator, wanted: Any, wait: float = 0.8) -> bool:
    try:
        await frames_until(communicator, wanted, wait=wait)
    except TimeoutError:
        return True
    return False


def fragment_of(message_pk: int):
    return lambda frame: isinstance(frame, str) and f'id="msg-{message_pk}"' in frame


def mentions(text: str):
    return lambda frame: text in (frame if isinstance(frame, str) else json.dumps(frame))


async def run(func, *args, **kwargs):
    return await database_sync_to_async(func)(*args, **kwargs)


@pytest.mark.django_db(transaction=True)
async def test_a_note_in_another_teams_conversation_is_not_pushed_to_an_operator_viewing_the_same_customer(
    mode, dora, alice, bob
):
    async with watching(bob, dora.sales_talk) as socket:
        note = await run(outbound.add_note, conversation=dora.support_talk, text="Second internal note", by=alice)
        await run(conversations.set_priority, conversation=dora.support_talk, priority=3, by=alice)
        assert await never(socket, fragment_of(note.pk))
        assert await never(socket, mentions("Second internal note"))
        # Nor the list ping: Support's conversation is in none of Bob's lists.
        assert await never(socket, lambda f: isinstance(f, dict) and dora.support_talk.pk in f.get("conversations", []))


@pytest.mark.django_db(transaction=True)
async def test_by_default_the_customers_new_message_in_another_teams_conversation_is_pushed_marked_with_its_team(
    shared, dora, bob
):
    async with watching(bob, dora.sales_talk) as socket:
        message = await run(write, dora.support_talk.last_channel, "Any news about 4711?", 4)
        fragment = await frames_until(socket, fragment_of(message.pk))
        assert f'hx-swap-oob="beforeend:#timeline-{dora.customer.pk}"' in fragment
        assert "Any news about 4711?" in fragment
        assert '<span class="badge team"' in fragment
        assert ">Support</span>" in fragment


@pytest.mark.django_db(transaction=True)
async def test_in_strict_isolation_nothing_of_another_teams_conversation_is_pushed(strict, dora, bob):
    async with watching(bob, dora.sales_talk) as socket:
        message = await run(write, dora.support_talk.last_channel, "Any news about 4711?", 4)
        assert await never(socket, fragment_of(message.pk))


@pytest.mark.django_db(transaction=True)
async def test_staff_viewing_the_customer_get_another_teams_note_live(mode, dora, alice, admin):
    async with watching(admin, dora.sales_talk) as socket:
        note = await run(outbound.add_note, conversation=dora.support_talk, text="Staff may read this", by=alice)
        fragment = await frames_until(socket, fragment_of(note.pk))
        assert "Staff may read this" in fragment
        assert ">Support</span>" in fragment


@pytest.mark.django_db(transaction=True)
async def test_the_live_customer_panel_lists_another_teams_conversation_only_in_shared_mode(mode, dora, bob):
    async with watching(bob, dora.sales_talk) as socket:
        await run(conversations.set_priority, conversation=dora.sales_talk, priority=3, by=bob)
        fragment = await frames_until(socket, lambda f: isinstance(f, str) and "customer-panel-" in f)
        assert (f"#{dora.support_talk.pk}<" in fragment) is (mode == "shared")
        assert f'href="/c/{dora.support_talk.pk}/"' not in fragment


# -- the setting ------------------------------------------------------------------------------------------------


@pytest.mark.stack
def test_an_unknown_isolation_setting_refuses_to_start():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "PARLEY_TEAM_ISOLATION": "loose"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "PARLEY_TEAM_ISOLATION must be 'shared' or 'strict'" in result.stderr
