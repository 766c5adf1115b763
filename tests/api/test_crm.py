"""The customer data a CRM shares, through the API: external ids, typed attributes (the token's
teams' and global ones; another team's hidden and not writable), upserts by external id, email or
phone (staff tokens; never merging two customers), and the inbox's attribute filter."""

from __future__ import annotations

import pytest

from audit.models import Entry
from customers.models import AttributeDefinition, Customer, Identity
from tests.api.conftest import receive


@pytest.fixture
def definitions(api_world):
    AttributeDefinition.objects.create(key="plan", label="Plan", type="choice", choices=["free", "pro"])
    AttributeDefinition.objects.create(key="seats", label="Seats", type="number", team=api_world.support)
    AttributeDefinition.objects.create(key="deal", label="Deal", type="text", team=api_world.sales)
    Customer.objects.filter(pk=api_world.customer.pk).update(
        attributes={"plan": "pro", "seats": 12, "deal": "sales-secret-77", "shoe_size": "44"}
    )


def test_a_customer_shows_the_external_id_and_the_attributes_the_token_may_see(
    api_world, definitions, as_alice, as_admin
):
    body = as_alice.get(f"/customers/{api_world.customer.pk}").json()
    assert body["external_id"] == "crm-42"
    assert body["attributes"] == {"plan": "pro", "seats": 12, "shoe_size": "44"}
    assert "sales-secret-77" not in str(as_alice.get("/customers").content)
    assert as_admin.get(f"/customers/{api_world.customer.pk}").json()["attributes"]["deal"] == "sales-secret-77"


def test_by_external_id_finds_a_customer_the_token_sees(api_world, as_alice, as_bob):
    assert as_alice.get("/customers/by-external-id/crm-42").json()["id"] == api_world.customer.pk
    assert as_bob.get("/customers/by-external-id/crm-42").status_code == 404
    assert as_alice.get("/customers/by-external-id/nobody").status_code == 404


def test_attributes_are_typed_and_another_teams_are_refused(api_world, definitions, as_alice):
    path = f"/customers/{api_world.customer.pk}"
    ok = as_alice.patch(path, {"attributes": {"seats": "15", "plan": None, "nickname": "Q"}})
    assert ok.status_code == 200, ok.content
    stored = Customer.objects.get(pk=api_world.customer.pk).attributes
    assert stored == {"seats": 15, "deal": "sales-secret-77", "shoe_size": "44", "nickname": "Q"}
    wrong = as_alice.patch(path, {"attributes": {"seats": "many", "plan": "gold"}})
    assert wrong.status_code == 422
    assert {e["field"] for e in wrong.json()["errors"]} == {"body.attributes.seats", "body.attributes.plan"}
    theirs = as_alice.patch(path, {"attributes": {"deal": "overwritten"}})
    assert theirs.status_code == 422
    assert theirs.json()["errors"][0]["field"] == "body.attributes.deal"
    assert Customer.objects.get(pk=api_world.customer.pk).attributes["deal"] == "sales-secret-77"


def test_an_external_id_another_customer_has_is_a_409(api_world, as_alice):
    other = receive(api_world.sms, "SM-crm-2", "hi", address="+15005559999").customer
    Customer.objects.filter(pk=other.pk).update(external_id="crm-77")
    response = as_alice.patch(f"/customers/{api_world.customer.pk}", {"external_id": "crm-77"})
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "body.external_id"
    assert Customer.objects.get(pk=api_world.customer.pk).external_id == "crm-42"


def test_put_by_external_id_creates_then_updates(api_world, as_admin):
    path = "/customers/by-external-id/crm-1001"
    made = as_admin.send(
        "PUT", path, {"name": "Nadia Petrenko", "email": "Nadia@Example.com", "attributes": {"vip": True}}
    )
    assert made.status_code == 201, made.content
    customer = Customer.objects.get(external_id="crm-1001")
    assert customer.name == "Nadia Petrenko"
    assert Identity.objects.get(customer=customer).value == "nadia@example.com"
    again = as_admin.send("PUT", path, {"name": "Nadia P.", "phone": "+1 500 555 0100"})
    assert again.status_code == 200
    assert again.json()["id"] == customer.pk
    assert {i["kind"] for i in again.json()["identities"]} == {"email", "phone"}
    assert Entry.objects.filter(target_type="customer", target_id=str(customer.pk)).count() == 2


def test_upsert_matches_by_email_or_phone_and_never_merges(api_world, as_admin):
    by_phone = as_admin.post("/customers/upsert", {"phone": "+1 (500) 555-0006", "name": "Quentin Z."})
    assert by_phone.status_code == 200
    assert by_phone.json()["id"] == api_world.customer.pk
    other = receive(api_world.sms, "SM-crm-3", "hi", address="+15005558888").customer
    clash = as_admin.post("/customers/upsert", {"external_id": "crm-42", "phone": "+15005558888"})
    assert clash.status_code == 409
    assert clash.json()["errors"][0]["field"] == "body.phone"
    assert Customer.objects.get(pk=other.pk).merged_into_id is None
    nothing = as_admin.post("/customers/upsert", {"name": "Only a name"})
    assert nothing.status_code == 422
    assert not Customer.objects.filter(name="Only a name").exists()


def test_upserts_take_a_staff_token(api_world, as_alice):
    assert as_alice.post("/customers/upsert", {"email": "x@example.com"}).status_code == 403
    assert as_alice.send("PUT", "/customers/by-external-id/crm-9", {"name": "X"}).status_code == 403
    assert not Customer.objects.filter(external_id="crm-9").exists()


def test_conversations_filter_on_a_typed_attribute(api_world, definitions, as_alice):
    other = receive(api_world.sms, "SM-crm-4", "hi", address="+15005557777").conversation
    Customer.objects.filter(pk=other.customer_id).update(attributes={"seats": 3})
    listed = as_alice.get("/conversations", attr="seats", value="12").json()["items"]
    assert [c["id"] for c in listed] == [api_world.conversation.pk]
    bad = as_alice.get("/conversations", attr="seats", value="twelve")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.value"
