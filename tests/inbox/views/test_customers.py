"""The customer pages, through the real URLs, middleware and templates."""

from __future__ import annotations

import pytest
from django.test import Client

from customers import services
from customers.models import Customer, CustomerMerge, Identity
from inbox.services import channels, inbound
from inbox.services.customers import merge_customers, undo_merge
from inbox.transport import InboundMessage

pytestmark = pytest.mark.django_db


def write(channel, address: str, provider_id: str, name: str = "", text: str = "Hi") -> Customer:
    message = inbound.receive_message(
        channel=channel, inbound=InboundMessage(provider_id=provider_id, address=address, text=text, name=name)
    )
    return message.customer


def login(client: Client, operator) -> Client:
    client.force_login(operator)  # the password check is covered by Django; hashing is slow
    return client


@pytest.fixture
def email(support):
    return channels.create_channel(kind="simulator", name="Email", team=support, channel_settings={"medium": "email"})


@pytest.fixture
def messenger(sales):
    return channels.create_channel(
        kind="simulator", name="Messenger", team=sales, channel_settings={"medium": "messenger"}
    )


@pytest.fixture
def ana(sms):
    return write(sms, "+1 500 555 0006", "ana-1", name="Ana Silva", text="My order arrived broken")


# -- list ----------------------------------------------------------------------------------------


def test_the_list_finds_a_customer_by_a_phone_number_written_with_spaces(client, alice, ana, sms):
    write(sms, "+15005550010", "other", name="Bruno")
    response = login(client, alice).get("/customers/", {"q": "+1 500 555 0006"})
    assert response.status_code == 200
    assert [c.pk for c in response.context["page"].customers] == [ana.pk]


def test_the_list_finds_a_customer_by_name_and_by_email_in_another_case(client, alice, email):
    bruno = write(email, "bruno@customer.test", "b1", name="Bruno Costa")
    login(client, alice)
    assert [c.pk for c in client.get("/customers/", {"q": "costa"}).context["page"].customers] == [bruno.pk]
    assert [c.pk for c in client.get("/customers/", {"q": "Bruno@Customer.TEST"}).context["page"].customers] == [
        bruno.pk
    ]


def test_an_operator_lists_only_customers_of_their_teams_and_staff_list_all(client, alice, admin, ana, messenger):
    dana = write(messenger, "6100000000000002", "d1", name="Dana")
    assert [c.pk for c in login(client, alice).get("/customers/").context["page"].customers] == [ana.pk]
    staff = login(Client(), admin).get("/customers/")
    assert {c.pk for c in staff.context["page"].customers} == {ana.pk, dana.pk}


def test_the_list_pages_with_a_cursor_without_repeating_anyone(client, alice, sms, settings):
    settings.PARLEY_PAGE_SIZE = 2
    for n in range(5):
        write(sms, f"+1500555{n:04d}", f"p{n}", name=f"Customer {n}")
    login(client, alice)
    seen: list[int] = []
    after = None
    for _ in range(5):
        page = client.get("/customers/", {"after": after} if after else {}).context["page"]
        seen += [c.pk for c in page.customers]
        after = page.next_cursor
        if after is None:
            break
    assert len(seen) == 5
    assert len(set(seen)) == 5
    assert seen == sorted(seen, reverse=True)


def test_show_more_over_htmx_returns_just_the_next_rows(client, alice, sms, settings):
    settings.PARLEY_PAGE_SIZE = 1
    write(sms, "+15005550001", "one", name="First")
    second = write(sms, "+15005550002", "two", name="Second")
    response = login(client, alice).get("/customers/", {"after": second.pk}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert "First" in body
    assert "Second" not in body
    assert "<table" not in body


def test_a_nonsense_cursor_is_a_400_not_a_500(client, alice):
    assert login(client, alice).get("/customers/", {"after": "abc"}).status_code == 400


# -- profile -------------------------------------------------------------------------------------


def test_the_profile_shows_identities_with_their_channels_conversations_and_notes(client, alice, ana, sms, whatsapp):
    services.add_customer_note(customer=ana, author=alice, text="Prefers text messages")
    response = login(client, alice).get(f"/customers/{ana.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Ana Silva" in page
    assert "+15005550006" in page
    # A phone number reaches the customer on SMS and WhatsApp alike.
    row = response.context["profile"].identities[0]
    assert {channel.pk for channel in row.channels} == {sms.pk, whatsapp.pk}
    conversation = ana.conversations.get()
    assert f'href="/c/{conversation.pk}/"' in page
    assert "Prefers text messages" in page


def test_a_customer_of_another_team_is_a_404(client, bob, ana):
    assert login(client, bob).get(f"/customers/{ana.pk}/").status_code == 404


def test_a_customer_that_does_not_exist_is_a_404(client, alice):
    assert login(client, alice).get("/customers/999999/").status_code == 404


def test_the_profile_needs_a_login(client, ana):
    response = client.get(f"/customers/{ana.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_an_operator_edits_name_language_vip_labels_and_attributes(client, alice, ana):
    ana.attributes = {"orders": 3}
    ana.save()
    response = login(client, alice).post(
        f"/customers/{ana.pk}/edit/",
        {
            "name": "Ana M. Silva",
            "language": "pt-BR",
            "is_vip": "on",
            "labels": "wholesale, late delivery, wholesale",
            "attributes": "orders: 3\ncity: Lisbon",
        },
    )
    assert response.status_code == 302
    ana.refresh_from_db()
    assert ana.name == "Ana M. Silva"
    assert ana.language == "pt-BR"
    assert ana.is_vip
    assert ana.labels == ["wholesale", "late delivery"]
    # The untouched number stays a number; the new value is text.
    assert ana.attributes == {"orders": 3, "city": "Lisbon"}


def test_a_malformed_attribute_line_is_a_form_error(client, alice, ana):
    response = login(client, alice).post(
        f"/customers/{ana.pk}/edit/", {"name": "Ana", "attributes": "no separator here"}
    )
    assert response.status_code == 400
    assert "key: value" in response.content.decode()
    ana.refresh_from_db()
    assert ana.attributes == {}


def test_another_team_cannot_edit_the_profile(client, bob, ana):
    assert login(client, bob).post(f"/customers/{ana.pk}/edit/", {"name": "Hacked"}).status_code == 404
    ana.refresh_from_db()
    assert ana.name == "Ana Silva"


def test_a_note_added_with_htmx_comes_back_as_the_notes_fragment(client, alice, ana):
    response = login(client, alice).post(
        f"/customers/{ana.pk}/notes/", {"text": "Called back, all good"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="notes"' in body
    assert "Called back, all good" in body
    assert "<html" not in body
    assert ana.notes.get().author == alice


def test_an_empty_note_is_refused(client, alice, ana):
    assert login(client, alice).post(f"/customers/{ana.pk}/notes/", {"text": "   "}).status_code == 400
    assert not ana.notes.exists()


def test_an_empty_note_from_htmx_gets_the_notes_fragment_back_with_the_error(client, alice, ana):
    response = login(client, alice).post(f"/customers/{ana.pk}/notes/", {"text": ""}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="notes"' in body
    assert "This field is required." in body
    assert "<html" not in body


# -- linking identities ----------------------------------------------------------------------------


def test_an_operator_links_an_email_address_by_hand(client, alice, ana):
    response = login(client, alice).post(
        f"/customers/{ana.pk}/identities/", {"kind": "email", "value": "Ana@Example.com"}
    )
    assert response.status_code == 302
    identity = ana.identities.get(kind="email")
    assert identity.value == "ana@example.com"
    assert not identity.verified


def test_an_invalid_phone_number_is_a_form_error(client, alice, ana):
    response = login(client, alice).post(f"/customers/{ana.pk}/identities/", {"kind": "phone", "value": "12"})
    assert response.status_code == 400
    assert "not a phone number" in response.content.decode()


def test_an_address_of_another_customer_is_not_taken_but_a_merge_is_offered(client, alice, ana, email):
    bruno = write(email, "bruno@customer.test", "b1", name="Bruno")
    response = login(client, alice).post(
        f"/customers/{ana.pk}/identities/", {"kind": "email", "value": "BRUNO@customer.test"}
    )
    assert response.status_code == 409
    assert Identity.objects.get(value="bruno@customer.test").customer_id == bruno.pk
    assert f'href="/customers/{ana.pk}/merge/{bruno.pk}/"' in response.content.decode()


# -- duplicates and merging ------------------------------------------------------------------------


@pytest.fixture
def ana_by_email(email):
    customer = write(email, "ana@example.com", "a-email", name="Ana S.", text="Any news?")
    customer.attributes = {"phone": "(500) 555-0006"}
    customer.save()
    return customer


def test_the_profile_suggests_a_duplicate_by_phone_but_not_by_name(client, alice, ana, ana_by_email, sms):
    write(sms, "+15005550099", "namesake", name="Ana Silva")
    response = login(client, alice).get(f"/customers/{ana_by_email.pk}/")
    duplicates = response.context["profile"].duplicates
    assert [d.customer.pk for d in duplicates] == [ana.pk]
    assert f'href="/customers/{ana_by_email.pk}/merge/{ana.pk}/"' in response.content.decode()


def test_the_merge_page_says_what_will_move_and_merges_nothing(client, alice, ana, ana_by_email):
    services.add_customer_note(customer=ana_by_email, author=alice, text="Works nights")
    response = login(client, alice).get(f"/customers/{ana.pk}/merge/{ana_by_email.pk}/")
    assert response.status_code == 200
    preview = response.context["preview"]
    assert [i.value for i in preview.identities] == ["ana@example.com"]
    assert (preview.conversations, preview.messages, preview.notes) == (1, 1, 1)
    assert preview.resolves_active
    assert not CustomerMerge.objects.exists()


def test_a_merge_needs_the_confirmation(client, alice, ana, ana_by_email):
    response = login(client, alice).post(f"/customers/{ana.pk}/merge/{ana_by_email.pk}/", {})
    assert response.status_code == 400
    assert not CustomerMerge.objects.exists()


def test_a_merge_needs_the_csrf_token(alice, ana, ana_by_email):
    client = login(Client(enforce_csrf_checks=True), alice)
    response = client.post(f"/customers/{ana.pk}/merge/{ana_by_email.pk}/", {"confirm": "on"})
    assert response.status_code == 403
    assert not CustomerMerge.objects.exists()


def test_a_confirmed_merge_moves_everything_and_can_be_undone(client, alice, ana, ana_by_email):
    login(client, alice)
    response = client.post(f"/customers/{ana.pk}/merge/{ana_by_email.pk}/", {"confirm": "on"})
    assert response.status_code == 302
    assert response["Location"] == f"/customers/{ana.pk}/"
    assert set(ana.identities.values_list("value", flat=True)) == {"+15005550006", "ana@example.com"}
    # The merged-away customer's page leads to the one they became.
    assert client.get(f"/customers/{ana_by_email.pk}/")["Location"] == f"/customers/{ana.pk}/"
    merge = CustomerMerge.objects.get()
    profile = client.get(f"/customers/{ana.pk}/")
    assert f"/customers/{ana.pk}/merges/{merge.pk}/undo/" in profile.content.decode()

    assert client.get(f"/customers/{ana.pk}/merges/{merge.pk}/undo/").status_code == 405
    undone = client.post(f"/customers/{ana.pk}/merges/{merge.pk}/undo/")
    assert undone.status_code == 302
    assert list(ana_by_email.identities.values_list("value", flat=True)) == ["ana@example.com"]
    assert client.get(f"/customers/{ana_by_email.pk}/").status_code == 200


def test_merging_the_same_customer_twice_is_a_clear_409(client, alice, ana, ana_by_email):
    login(client, alice)
    client.post(f"/customers/{ana.pk}/merge/{ana_by_email.pk}/", {"confirm": "on"})
    again = client.post(f"/customers/{ana.pk}/merge/{ana_by_email.pk}/", {"confirm": "on"})
    assert again.status_code == 409
    assert "already merged" in again.content.decode()
    assert CustomerMerge.objects.count() == 1


def test_a_customer_cannot_be_merged_into_themselves_through_the_page(client, alice, ana):
    response = login(client, alice).post(f"/customers/{ana.pk}/merge/{ana.pk}/", {"confirm": "on"})
    assert response.status_code == 409
    assert not CustomerMerge.objects.exists()


def test_undoing_twice_is_a_409(client, alice, ana, ana_by_email):
    merge = merge_customers(source=ana_by_email, target=ana, by=alice)
    undo_merge(merge=merge, by=alice)
    assert login(client, alice).post(f"/customers/{ana.pk}/merges/{merge.pk}/undo/").status_code == 409


def test_an_operator_cannot_merge_in_a_customer_of_another_team(client, alice, ana, messenger):
    dana = write(messenger, "6100000000000002", "d1", name="Dana")
    response = login(client, alice).post(f"/customers/{ana.pk}/merge/{dana.pk}/", {"confirm": "on"})
    assert response.status_code == 404
    assert not CustomerMerge.objects.exists()
