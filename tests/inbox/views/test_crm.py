"""CRM data in the UI: external id and typed attributes on the profile, the CRM link, the inbox filter."""

from __future__ import annotations

import pytest
from django.test import Client

from customers.models import AttributeDefinition, Customer
from inbox.services import inbound
from inbox.transport import InboundMessage

pytestmark = pytest.mark.django_db


def write(channel, address: str, provider_id: str) -> Customer:
    message = inbound.receive_message(
        channel=channel, inbound=InboundMessage(provider_id=provider_id, address=address, text="Hi", name="Ana")
    )
    return message.customer


@pytest.fixture
def definitions(support, sales):
    AttributeDefinition.objects.create(key="plan", label="Plan", type="choice", choices=["free", "pro"])
    AttributeDefinition.objects.create(key="orders", label="Orders", type="number", team=support)
    AttributeDefinition.objects.create(key="invoice", label="Invoice", type="link", team=support)
    AttributeDefinition.objects.create(key="quota", label="Sales quota", type="number", team=sales)


@pytest.fixture
def ana(sms):
    return write(sms, "+15005550006", "ana-1")


def login(client: Client, operator) -> Client:
    client.force_login(operator)
    return client


def form(**fields):
    base = {"name": "Ana", "external_id": "", "language": "", "labels": "", "attributes": ""}
    return {**base, **fields}


def test_the_profile_edits_external_id_and_typed_attributes(client, alice, ana, definitions):
    login(client, alice)
    response = client.post(
        f"/customers/{ana.pk}/edit/",
        form(
            external_id="crm-42",
            attribute_plan="pro",
            attribute_orders="7",
            attribute_invoice="https://billing.example/inv/1",
            attributes="colour: blue",
        ),
    )
    assert response.status_code == 302
    ana.refresh_from_db()
    assert ana.external_id == "crm-42"
    assert ana.attributes == {"colour": "blue", "plan": "pro", "orders": 7, "invoice": "https://billing.example/inv/1"}
    page = client.get(f"/customers/{ana.pk}/").content.decode()
    assert "crm-42" in page
    assert 'href="https://billing.example/inv/1" rel="noopener noreferrer nofollow"' in page
    assert "Sales quota" not in page  # another team's attribute


def test_bad_typed_values_are_a_400_with_the_fields_error(client, alice, ana, definitions):
    response = login(client, alice).post(
        f"/customers/{ana.pk}/edit/", form(attribute_orders="many", attribute_plan="gold")
    )
    assert response.status_code == 400
    errors = response.context["customer_form"].errors
    assert "attribute_orders" in errors
    assert "attribute_plan" in errors
    ana.refresh_from_db()
    assert ana.attributes == {}


def test_an_external_id_another_customer_has_is_refused(client, alice, ana, sms):
    Customer.objects.create(name="Other", external_id="crm-1")
    response = login(client, alice).post(f"/customers/{ana.pk}/edit/", form(external_id="crm-1"))
    assert response.status_code == 400
    assert "external_id" in response.context["customer_form"].errors


def test_another_teams_attribute_survives_an_edit(client, alice, ana, definitions):
    ana.attributes = {"quota": 5}
    ana.save()
    login(client, alice).post(f"/customers/{ana.pk}/edit/", form(attribute_plan="free"))
    ana.refresh_from_db()
    assert ana.attributes == {"quota": 5, "plan": "free"}


def test_the_crm_link_is_built_from_the_teams_template_and_escaped(client, alice, ana, support, sales):
    support.crm_link_template = "https://crm.example.com/contacts/{external_id}"
    support.save()
    sales.crm_link_template = "https://sales-crm.example.com/{external_id}"
    sales.save()
    ana.external_id = 'a"b/<c>'
    ana.save()
    page = login(client, alice).get(f"/customers/{ana.pk}/").content.decode()
    assert 'href="https://crm.example.com/contacts/a%22b%2F%3Cc%3E"' in page
    assert "sales-crm.example.com" not in page  # alice is not in Sales


def test_the_inbox_filters_on_one_attribute_equal_to_a_value(client, alice, sms, definitions):
    pro = write(sms, "+15005550006", "a")
    free = write(sms, "+15005550007", "b")
    many = write(sms, "+15005550008", "c")
    pro.attributes = {"plan": "pro"}
    pro.save()
    free.attributes = {"plan": "free"}
    free.save()
    many.attributes = {"orders": 12}
    many.save()
    login(client, alice)
    shown = client.get("/", {"attr": "plan", "value": "pro"}).context["page"].items
    assert [c.customer_id for c in shown] == [pro.pk]
    shown = client.get("/", {"attr": "orders", "value": "12"}).context["page"].items  # typed: 12, not "12"
    assert [c.customer_id for c in shown] == [many.pk]
    assert client.get("/", {"attr": "orders", "value": "lots"}).status_code == 400
