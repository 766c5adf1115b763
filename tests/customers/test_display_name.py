"""Who the customer is, at a glance: a customer with no name is shown by their phone number (in the
operators' region's format), their handle or their email address, never as "Customer #9"."""

from __future__ import annotations

import pytest
from django.test import Client

from customers.models import Customer, Identity, contact_label, format_phone
from customers.services import link_identity, merge_identities, refresh_contact, resolve_customer, undo_identities
from inbox.realtime.consumers import assignment_frame
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.conftest import PASSWORD


def test_a_phone_number_is_national_at_home_and_international_abroad(settings):
    settings.PARLEY_DEFAULT_REGION = "US"
    assert format_phone("+12015550123") == "(201) 555-0123"
    assert format_phone("+442079460958") == "+44 20 7946 0958"
    assert format_phone("+442079460958", region="GB") == "020 7946 0958"
    assert format_phone("US.1349120865530") == ""


def test_nameless_labels_never_show_an_id():
    assert contact_label("whatsapp", "US.1349120865530") == "WhatsApp user"
    assert contact_label("webchat", "") == "Website visitor"
    assert contact_label("", "") == "Unknown customer"
    assert contact_label("email", "dora@example.test") == "dora@example.test"


def test_a_nameless_sms_customer_is_shown_by_their_number(sms, settings):
    settings.PARLEY_DEFAULT_REGION = "US"
    message = receive_message(channel=sms, inbound=InboundMessage(provider_id="a", address="+12015550123", text="Hi"))
    customer = Customer.objects.get(pk=message.customer_id)
    assert customer.display_name == "(201) 555-0123"
    assert str(customer) == "(201) 555-0123"


@pytest.mark.django_db
def test_a_telegram_customer_without_a_name_is_shown_by_their_handle():
    customer, _ = resolve_customer(kind="telegram", value="777000", handle="@dora_k")
    assert customer.display_name == "@dora_k"
    other, _ = resolve_customer(kind="telegram", value="777001")
    assert other.display_name == "Telegram user"


@pytest.mark.django_db
def test_a_phone_number_added_later_names_the_customer_before_a_visitor_id():
    customer, _ = resolve_customer(kind="webchat", value="visitor-3f9a")
    assert customer.display_name == "Website visitor"
    link_identity(customer=customer, kind="email", value="Dora@Example.test")
    customer.refresh_from_db()
    assert customer.display_name == "dora@example.test"
    link_identity(customer=customer, kind="phone", value="+442079460958")
    customer.refresh_from_db()
    assert customer.display_name == "+44 20 7946 0958"
    Identity.objects.filter(customer=customer, kind="phone").delete()
    customer.refresh_from_db()
    assert customer.display_name == "dora@example.test"


@pytest.mark.django_db
def test_a_name_wins_over_any_address():
    customer, _ = resolve_customer(kind="phone", value="+12015550123", name="Dora Kim")
    assert customer.display_name == "Dora Kim"


@pytest.mark.django_db
def test_a_merge_and_its_undo_keep_the_contact_in_step():
    target, _ = resolve_customer(kind="webchat", value="visitor-1")
    source, _ = resolve_customer(kind="phone", value="+12015550123")
    merge = merge_identities(source=source, target=target, by=None, moved={})
    target.refresh_from_db()
    source.refresh_from_db()
    assert target.display_name == "(201) 555-0123"
    assert source.display_name == "(201) 555-0123"  # the merge history still names them
    undo_identities(merge=merge, by=None)
    target.refresh_from_db()
    assert target.display_name == "Website visitor"


@pytest.mark.django_db
def test_refresh_contact_repairs_a_customer_written_around_the_services():
    customer = Customer.objects.create()
    Identity.objects.bulk_create([Identity(customer=customer, kind="email", value="x@example.test")])
    refresh_contact(customer_ids=[customer.pk])
    customer.refresh_from_db()
    assert customer.display_name == "x@example.test"


@pytest.fixture
def nameless(sms, settings):
    settings.PARLEY_DEFAULT_REGION = "US"
    return receive_message(
        channel=sms, inbound=InboundMessage(provider_id="n-1", address="+12015550123", text="Where is my order?")
    ).conversation


def test_the_list_the_thread_and_the_profile_show_the_number(client: Client, alice, nameless):
    client.login(username="alice", password=PASSWORD)
    pages = [
        client.get("/"),
        client.get(f"/c/{nameless.pk}/"),
        client.get(f"/customers/{nameless.customer_id}/"),
        client.get("/customers/"),
    ]
    for page in pages:
        assert page.status_code == 200
        body = page.content.decode()
        assert "(201) 555-0123" in body, page.request["PATH_INFO"]
        assert "Customer #" not in body


def test_the_assignment_notification_names_the_number(nameless):
    frame = assignment_frame(nameless.pk, "en")
    assert frame is not None
    assert frame["title"] == "Assigned to you: (201) 555-0123"
