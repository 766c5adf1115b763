"""Search: every conversation's messages the operator may see, by words, phrases and order numbers."""

from __future__ import annotations

import io
from datetime import timedelta
from itertools import count

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from inbox.models import Channel, Conversation, Message
from inbox.selectors import search
from inbox.services import activity, channels, outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage

URL = reverse("inbox:search")
_ids = count()


@pytest.fixture
def telegram(sales) -> Channel:
    return channels.create_channel(
        kind="simulator", name="Sales Telegram", team=sales, channel_settings={"medium": "telegram"}
    )


def write(
    channel: Channel, text: str, *, address: str = "+15005550001", name: str = "Dora", minutes_ago: int = 0
) -> Message:
    """A customer writes on ``channel`` through the real inbound path, ``minutes_ago`` minutes ago."""
    inbound = InboundMessage(provider_id=f"p{next(_ids)}", address=address, text=text, name=name)
    message = receive_message(channel=channel, inbound=inbound)
    return _dated(message, minutes_ago)


def _dated(message: Message, minutes_ago: int) -> Message:
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return Message.objects.get(pk=message.pk)


def found(operator, query: str, **kwargs) -> list[int]:
    return [hit.message.pk for hit in search.search_messages(operator=operator, query=query, **kwargs).hits]


def conversation_of(message: Message) -> Conversation:
    return Conversation.objects.get(pk=message.conversation_id)


def test_finds_a_word_in_a_customer_message_an_operator_reply_and_a_private_note(alice, sms):
    inbound = write(sms, "My parcel never arrived", minutes_ago=3)
    reply = _dated(outbound.reply(conversation=conversation_of(inbound), text="Your parcel is on its way", by=alice), 2)
    note = _dated(
        outbound.add_note(conversation=conversation_of(inbound), text="Parcel lost by the courier", by=alice), 1
    )
    write(sms, "Where is my refund?", address="+15005550002", name="Eve")

    assert found(alice, "parcel") == [note.pk, reply.pk, inbound.pk]


def test_every_word_must_match_in_any_order(alice, sms):
    both = write(sms, "The blue parcel is late", minutes_ago=1)
    write(sms, "The parcel is red", address="+15005550002")

    assert found(alice, "late parcel") == [both.pk]
    assert found(alice, "parcel green") == []


def test_a_quoted_phrase_must_appear_as_written(alice, sms):
    phrase = write(sms, "I want a refund please", minutes_ago=1)
    write(sms, "Please, no refund; I want a new one", address="+15005550002")

    assert found(alice, '"want a refund"') == [phrase.pk]
    assert set(found(alice, "want refund")) == {phrase.pk, Message.objects.exclude(pk=phrase.pk).get(kind="message").pk}


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("Where is order #1234? It is late.", "#1234"),
        ("Where is order #1234? It is late.", "order #1234"),
        ("Reference A-1001 on the invoice", "A-1001"),
        ("Reference A-1001 on the invoice", "a-1001"),
        ("Call me back on +15005550006 please", "+15005550006"),
        ("Write to dora@example.com instead", "dora@example.com"),
    ],
)
def test_order_numbers_phone_numbers_and_email_addresses_are_found(alice, sms, text, query):
    wanted = write(sms, text, minutes_ago=1)
    write(sms, "Order #4321 and A-1002, call +15005550007 or eve@example.com", address="+15005550002")

    assert found(alice, query) == [wanted.pk]


def test_matching_ignores_case(alice, sms):
    message = write(sms, "REFUND for the Broken Kettle")

    assert found(alice, "refund broken KETTLE") == [message.pk]


def test_operators_find_only_their_teams_conversations_and_staff_find_all(alice, bob, admin, sms, telegram):
    support = write(sms, "The kettle is broken", minutes_ago=1)
    sales = write(telegram, "Price of the kettle?", address="sales-customer")

    assert found(alice, "kettle") == [support.pk]
    assert found(bob, "kettle") == [sales.pk]
    assert found(admin, "kettle") == [sales.pk, support.pk]


def test_activity_entries_are_not_hits(alice, sms):
    message = write(sms, "Please resolve this", minutes_ago=1)
    activity.record_activity(conversation=conversation_of(message), action="resolve", by=alice)

    assert Message.objects.filter(kind="activity", text__icontains="resolve").exists()
    assert found(alice, "resolve") == [message.pk]


def test_results_come_newest_first_and_the_cursor_gives_the_next_page_without_repeats(alice, sms):
    # Three customers, several messages each; two share a timestamp so the id breaks the tie.
    messages = [write(sms, f"kettle question {n}", address=f"+1500555001{n % 3}", minutes_ago=10 - n) for n in range(7)]
    Message.objects.filter(pk=messages[4].pk).update(created_at=messages[5].created_at)
    newest_first = [
        m.pk for m in sorted(Message.objects.filter(kind="message"), key=lambda m: (m.created_at, m.pk), reverse=True)
    ]

    first = search.search_messages(operator=alice, query="kettle", limit=3)
    second = search.search_messages(operator=alice, query="kettle", limit=3, before=first.next_cursor)
    third = search.search_messages(operator=alice, query="kettle", limit=3, before=second.next_cursor)

    pages = [[hit.message.pk for hit in page.hits] for page in (first, second, third)]
    assert pages == [newest_first[:3], newest_first[3:6], newest_first[6:]]
    assert third.next_cursor is None


def test_the_page_lists_hits_with_customer_channel_snippet_and_a_link_to_the_message(client, alice, sms):
    message = write(sms, "Where is order #1234? It is late.", name="Dora Customer")
    client.force_login(alice)

    page = client.get(URL, {"q": "#1234"})

    assert page.status_code == 200
    html = page.content.decode()
    assert f'href="/c/{message.conversation_id}/#msg-{message.pk}"' in html
    assert "Dora Customer" in html
    assert "SMS" in html
    assert "Where is order <mark>#1234</mark>? It is late." in html
    assert "1 message on this page" in html


def test_the_older_results_link_opens_the_next_page(client, alice, sms):
    for n in range(32):
        write(sms, f"kettle {n}", minutes_ago=n)
    client.force_login(alice)

    first = client.get(URL, {"q": "kettle"})
    assert "30 messages on this page" in first.content.decode()
    cursor = first.context["page"].next_cursor
    assert f"?q=kettle&amp;before={cursor}" in first.content.decode()

    second = client.get(URL, {"q": "kettle", "before": cursor})
    assert "2 messages on this page" in second.content.decode()
    assert "Older results" not in second.content.decode()


def test_a_search_without_hits_says_so(client, alice, sms):
    write(sms, "Hello")
    client.force_login(alice)

    page = client.get(URL, {"q": "kettle"})

    assert page.status_code == 200
    assert "No message matches “kettle”." in page.content.decode()


def test_the_snippet_escapes_html_in_the_message(client, alice, sms):
    write(sms, "Broken kettle <script>alert('x')</script>")
    client.force_login(alice)

    html = client.get(URL, {"q": "kettle"}).content.decode()

    assert "<script>alert" not in html
    assert "Broken <mark>kettle</mark> &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_the_snippet_shows_the_text_around_the_first_match():
    text = "word " * 100 + "the kettle is broken " + "word " * 100
    pieces = search.snippet(text, search.parse_query("KETTLE"))

    assert pieces[0] == ("…", False)
    assert ("kettle", True) in pieces
    assert pieces[-1] == ("…", False)
    assert sum(len(piece) for piece, _ in pieces) <= search.SNIPPET_LENGTH + 2


@pytest.mark.parametrize(("query", "problem"), [("k", "at least 2 characters"), ("k" * 101, "at most 100 characters")])
def test_a_query_too_short_or_too_long_is_refused_with_a_message(client, alice, query, problem):
    client.force_login(alice)

    response = client.get(URL, {"q": query})

    assert response.status_code == 400
    assert problem in response.content.decode()


def test_a_broken_cursor_is_refused_with_a_message(client, alice):
    client.force_login(alice)

    response = client.get(URL, {"q": "kettle", "before": "not-a-cursor"})

    assert response.status_code == 400
    assert "That link to older results is broken" in response.content.decode()


def test_a_page_costs_the_same_few_queries_however_many_hits(
    client, alice, admin, sms, whatsapp, django_assert_max_num_queries
):
    for n in range(30):
        write(sms if n % 2 else whatsapp, f"kettle {n}", address=f"+1500555{n:04d}", name=f"Customer {n}")
    for operator in (alice, admin):
        client.force_login(operator)
        # The session, the operator, their teams, the page of hits, and the softphone's voice line (base.html).
        with django_assert_max_num_queries(5):
            page = client.get(URL, {"q": "kettle"})
        assert len(page.context["page"].hits) == 30


def test_every_operator_has_search_in_the_top_navigation(client, bob):
    client.force_login(bob)

    assert f'<a href="{URL}"' in client.get(reverse("inbox:index")).content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(URL, {"q": "kettle"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db(transaction=True)  # CREATE INDEX CONCURRENTLY refuses to run inside a transaction
def test_the_search_index_is_built_concurrently_on_postgresql_and_skipped_on_sqlite():
    out = io.StringIO()
    call_command("sqlmigrate", "inbox", "0005", stdout=out)
    sql = out.getvalue()
    if connection.vendor == "postgresql":
        assert 'CREATE INDEX CONCURRENTLY "msg_text_search" ON "inbox_message" USING gin' in sql
        assert "to_tsvector('simple'::regconfig" in sql
    else:
        assert "(no-op)" in sql
