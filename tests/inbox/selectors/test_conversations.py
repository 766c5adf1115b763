from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inbox.models import Conversation, Message
from inbox.selectors import cursors
from inbox.selectors.conversations import Page, customer_panel, inbox_counts, inbox_page, thread_page
from inbox.services import conversations, inbound, outbound
from inbox.transport import InboundMessage


def conversation_from(channel, number: int, text: str = "Hello") -> Conversation:
    """A customer writes on ``channel`` from their own number; returns their conversation."""
    message = inbound.receive_message(
        channel=channel,
        inbound=InboundMessage(provider_id=f"p{number}", address=f"+1500555{number:04d}", text=text, name=f"C{number}"),
    )
    return message.conversation


def ids(page: Page) -> list[int]:
    return [conversation.pk for conversation in page.items]


@pytest.fixture
def mixed(sms, alice, bob):
    """One conversation per tab situation, all in Support."""
    mine = conversation_from(sms, 1)
    conversations.assign_conversation(conversation=mine, operator=alice, by=alice)
    waiting = conversation_from(sms, 2)
    bot = conversation_from(sms, 3)
    Conversation.objects.filter(pk=bot.pk).update(handler=Conversation.Handler.BOT)
    done = conversation_from(sms, 4)
    conversations.assign_conversation(conversation=done, operator=alice, by=alice)
    conversations.resolve_conversation(conversation=done, by=alice)
    snoozed = conversation_from(sms, 5)
    conversations.snooze_conversation(conversation=snoozed, until=timezone.now() + timedelta(hours=1), by=alice)
    return {"mine": mine, "waiting": waiting, "bot": bot, "done": done, "snoozed": snoozed}


def test_tabs_hold_the_conversations_they_promise(mixed, alice):
    def tab(name):
        return set(ids(inbox_page(operator=alice, tab=name)))

    assert tab("mine") == {mixed["mine"].pk}
    assert tab("unassigned") == {mixed["waiting"].pk}
    assert tab("bot") == {mixed["bot"].pk}
    assert tab("all") == {c.pk for c in mixed.values()}


def test_counts_are_of_the_work_still_to_do_in_each_tab(mixed, alice):
    # "all" counts what is not resolved: the snoozed one too, not the resolved one.
    assert inbox_counts(operator=alice) == {"mine": 1, "unassigned": 1, "bot": 1, "all": 4}


def test_an_operator_sees_nothing_of_another_team(mixed, bob, admin):
    assert inbox_page(operator=bob, tab="all").items == []
    assert inbox_counts(operator=bob)["all"] == 0
    with pytest.raises(Conversation.DoesNotExist):
        thread_page(operator=bob, conversation_id=mixed["mine"].pk)
    assert len(inbox_page(operator=admin, tab="all").items) == 5


def test_filters_by_status_channel_and_team(mixed, alice, whatsapp, support, sales):
    on_whatsapp = conversation_from(whatsapp, 9)
    assert ids(inbox_page(operator=alice, channel_id=whatsapp.pk)) == [on_whatsapp.pk]
    assert ids(inbox_page(operator=alice, status="resolved")) == [mixed["done"].pk]
    assert ids(inbox_page(operator=alice, team_id=sales.pk)) == []
    assert len(inbox_page(operator=alice, team_id=support.pk).items) == 6
    assert inbox_counts(operator=alice, channel_id=whatsapp.pk)["all"] == 1
    assert inbox_counts(operator=alice, team_id=sales.pk)["all"] == 0


def test_newest_activity_comes_first(sms, alice):
    older = conversation_from(sms, 1)
    newer = conversation_from(sms, 2)
    assert ids(inbox_page(operator=alice)) == [newer.pk, older.pk]
    inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="again", address="+15005550001", text="Still there?")
    )
    assert ids(inbox_page(operator=alice)) == [older.pk, newer.pk]


def test_keyset_pages_visit_every_conversation_once_even_with_equal_times(sms, alice):
    conversations = [conversation_from(sms, n) for n in range(7)]
    same_moment = timezone.now()
    Conversation.objects.filter(pk__in=[c.pk for c in conversations[:4]]).update(last_message_at=same_moment)
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        page = inbox_page(operator=alice, cursor=cursor, limit=3)
        seen += ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = list(Conversation.objects.order_by("-last_message_at", "-pk").values_list("pk", flat=True))
    assert seen == expected


def test_a_forged_cursor_is_refused(alice):
    with pytest.raises(cursors.InvalidCursor):
        inbox_page(operator=alice, cursor="not-a-cursor")


@pytest.mark.parametrize("size", [3, 30])
def test_inbox_queries_do_not_grow_with_the_data(sms, alice, size, django_assert_num_queries):
    for n in range(size):
        conversation = conversation_from(sms, n)
        conversations.assign_conversation(conversation=conversation, operator=alice, by=alice)
    assert alice.team_ids  # one query per request (request.user), then cached
    with django_assert_num_queries(1):
        page = inbox_page(operator=alice, tab="mine", limit=25)
        for conversation in page.items:
            str(conversation.customer), str(conversation.assignee), str(conversation.last_channel)
    with django_assert_num_queries(1):
        inbox_counts(operator=alice)


@pytest.mark.parametrize("size", [2, 20])
def test_thread_queries_do_not_grow_with_the_data(sms, alice, size, django_assert_num_queries):
    conversation = conversation_from(sms, 1)
    for n in range(size):
        outbound.reply(conversation=conversation, text=f"Reply {n}", by=alice)
    assert alice.team_ids  # one query per request (request.user), then cached
    with django_assert_num_queries(3):
        thread = thread_page(operator=alice, conversation_id=conversation.pk)
        for message in thread.messages:
            str(message.channel), str(message.author), list(message.attachments.all())


def test_the_thread_is_the_customers_whole_timeline_across_channels_and_conversations(sms, whatsapp, alice):
    first = conversation_from(sms, 1, text="On SMS")
    conversations.resolve_conversation(conversation=first, by=alice)
    Conversation.objects.filter(pk=first.pk).update(resolved_at=timezone.now() - timedelta(days=365))
    second = conversation_from(whatsapp, 1, text="Now on WhatsApp")
    assert second.pk != first.pk
    thread = thread_page(operator=alice, conversation_id=second.pk)
    texts = [m.text for m in thread.messages if m.kind == Message.Kind.MESSAGE]
    assert texts == ["On SMS", "Now on WhatsApp"]


def test_older_messages_page_back_without_gaps(sms, alice):
    conversation = conversation_from(sms, 1, text="m0")
    for n in range(1, 12):
        outbound.add_note(conversation=conversation, text=f"m{n}", by=alice)
    texts: list[str] = []
    before = None
    while True:
        thread = thread_page(operator=alice, conversation_id=conversation.pk, before=before, limit=4)
        texts = [m.text for m in thread.messages] + texts
        before = thread.older_cursor
        if before is None:
            break
    assert texts == [f"m{n}" for n in range(12)]


def test_customer_panel_lists_identities_conversations_and_notes(sms, alice, django_assert_max_num_queries):
    conversation = conversation_from(sms, 1)
    conversation.customer.notes.create(author=alice, text="Prefers SMS")
    assert alice.team_ids  # one query per request (request.user), then cached
    with django_assert_max_num_queries(4):
        panel = customer_panel(operator=alice, customer_id=conversation.customer_id)
    assert [i.value for i in panel.identities] == ["+15005550001"]
    assert [c.pk for c in panel.conversations] == [conversation.pk]
    assert [n.text for n in panel.notes] == ["Prefers SMS"]
