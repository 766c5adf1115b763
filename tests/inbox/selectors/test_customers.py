"""Reads behind the customer pages: team scoping, search, merges followed, fixed query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers import services
from customers.models import Customer, Identity
from inbox.models import Conversation
from inbox.selectors.customers import (
    customer_for,
    customer_page,
    customer_profile,
    duplicates_for,
    merge_preview,
    visible_customers,
)
from inbox.services import inbound
from inbox.services.customers import merge_customers
from inbox.transport import InboundMessage

pytestmark = pytest.mark.django_db


def write(channel, address: str, provider_id: str, name: str = "") -> Customer:
    return inbound.receive_message(
        channel=channel, inbound=InboundMessage(provider_id=provider_id, address=address, text="Hi", name=name)
    ).customer


def queries(func) -> int:
    with CaptureQueriesContext(connection) as captured:
        func()
    return len(captured)


def test_a_customer_without_a_conversation_in_my_teams_is_hidden_but_staff_see_everyone(alice, bob, admin, sms):
    ana = write(sms, "+15005550006", "a")
    nobody = Customer.objects.create(name="No conversation yet")
    assert list(visible_customers(alice)) == [ana]
    assert list(visible_customers(bob)) == []
    assert set(visible_customers(admin)) == {ana, nobody}


def test_a_customer_with_a_conversation_in_any_of_my_teams_is_visible(bob, sms, sales):
    ana = write(sms, "+15005550006", "a")
    Conversation.objects.create(
        customer=ana, team=sales, status="resolved", last_message_at=timezone.now(), resolved_at=timezone.now()
    )
    assert list(visible_customers(bob)) == [ana]


def test_a_merged_away_customer_resolves_to_the_one_they_became(alice, sms):
    ana = write(sms, "+15005550006", "a")
    old = write(sms, "+15005550010", "b")
    merge_customers(source=old, target=ana, by=alice)
    assert customer_for(alice, old.pk) == ana
    assert customer_for(alice, old.pk, follow_merges=False) == old
    assert old not in visible_customers(alice)


def test_customer_for_is_a_404_outside_my_teams(bob, sms):
    ana = write(sms, "+15005550006", "a")
    with pytest.raises(Http404):
        customer_for(bob, ana.pk)


@pytest.mark.parametrize("query", ["+1 500 555 0006", "(500) 555-0006", "5550006", "555 0006", "ana silva", "ANA@EX"])
def test_search_finds_a_customer_however_the_address_is_written(alice, sms, query):
    ana = write(sms, "+15005550006", "a", name="Ana Silva")
    Identity.objects.create(customer=ana, kind="email", value="ana@example.com")
    write(sms, "+15005550010", "b", name="Bruno")
    page = customer_page(operator=alice, query=query)
    assert [c.pk for c in page.customers] == [ana.pk]


def test_the_list_costs_the_same_queries_for_few_and_many_customers(alice, sms):
    write(sms, "+15005550100", "first")
    few = queries(lambda: customer_page(operator=alice, size=25))
    for n in range(8):
        customer = write(sms, f"+1500555{n + 200:04d}", f"c{n}")
        Identity.objects.create(customer=customer, kind="email", value=f"c{n}@example.com")
    many = queries(lambda: customer_page(operator=alice, size=25))
    assert many == few


def test_the_profile_costs_the_same_queries_however_much_history_there_is(alice, sms, whatsapp):
    ana = write(sms, "+15005550006", "a")
    assert alice.team_ids  # one query per request (request.user), then cached
    few = queries(lambda: customer_profile(operator=alice, customer=ana))
    for n in range(5):
        Conversation.objects.create(
            customer=ana, team=sms.team, status="resolved", last_message_at=timezone.now(), resolved_at=timezone.now()
        )
        services.add_customer_note(customer=ana, author=alice, text=f"note {n}")
        # Telegram ids: suggest_duplicates queries once per phone/email identity (reported to the lead).
        Identity.objects.create(customer=ana, kind="telegram", value=f"70000000{n}")
    write(whatsapp, "+15005550006", "b")
    many = queries(lambda: customer_profile(operator=alice, customer=ana))
    assert many == few


def test_the_merge_preview_counts_what_would_move(alice, sms):
    ana = write(sms, "+15005550006", "a")
    old = write(sms, "+15005550010", "b")
    services.add_customer_note(customer=old, author=alice, text="n")
    preview = merge_preview(source=old, target=ana)
    assert [i.value for i in preview.identities] == ["+15005550010"]
    assert (preview.conversations, preview.messages, preview.notes, preview.resolves_active) == (1, 1, 1, True)


def test_duplicates_of_another_team_are_not_offered_to_an_operator(alice, admin, sms, sales):
    ana = write(sms, "+15005550006", "a")
    other = Customer.objects.create(name="Imported")
    Identity.objects.create(customer=other, kind="phone", value="5005550006")
    Conversation.objects.create(customer=other, team=sales, last_message_at=timezone.now())
    assert duplicates_for(alice, ana) == []
    assert [d.customer.pk for d in duplicates_for(admin, ana)] == [other.pk]


def test_a_long_history_shows_the_latest_and_says_there_is_more(alice, sms, monkeypatch):
    monkeypatch.setattr("inbox.selectors.customers.PROFILE_LIMIT", 2)
    ana = write(sms, "+15005550006", "a")
    for n in range(3):
        services.add_customer_note(customer=ana, author=alice, text=f"note {n}")
        Conversation.objects.create(
            customer=ana, team=sms.team, status="resolved", last_message_at=timezone.now(), resolved_at=timezone.now()
        )
    profile = customer_profile(operator=alice, customer=ana)
    assert [note.text for note in profile.notes] == ["note 2", "note 1"]
    assert profile.more_notes
    assert len(profile.conversations) == 2
    assert profile.more_conversations
