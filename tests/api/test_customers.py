"""Customers through the API: the team-scoped list and search, one customer, changes, notes."""

from __future__ import annotations

from audit.models import Entry
from customers.models import Customer, CustomerNote
from tests.api.conftest import CUSTOMER_NAME, receive


def test_the_list_finds_a_customer_by_a_phone_number_written_any_way(api_world, as_alice, as_bob):
    found = as_alice.get("/customers", q="+1 500 555 0006").json()["items"]
    assert [c["id"] for c in found] == [api_world.customer.pk]
    assert found[0]["identities"][0]["value"] == "+15005550006"
    assert as_bob.get("/customers", q="+1 500 555 0006").json()["items"] == []


def test_the_list_pages_by_keyset(api_world, as_alice):
    for n in range(3):
        receive(api_world.sms, f"SM-c-{n}", "hi", address=f"+1500555{2000 + n}")
    first = as_alice.get("/customers", limit=2).json()
    second = as_alice.get("/customers", limit=2, cursor=first["next_cursor"]).json()
    ids = [c["id"] for c in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 4
    assert second["next_cursor"] is None


def test_one_customer_with_identities_and_attributes(api_world, as_alice):
    body = as_alice.get(f"/customers/{api_world.customer.pk}").json()
    assert body["name"] == CUSTOMER_NAME
    assert [(i["kind"], i["value"]) for i in body["identities"]] == [("phone", "+15005550006")]
    assert body["attributes"] == {}


def test_patch_changes_only_the_fields_given_and_is_audited(api_world, as_alice):
    response = as_alice.patch(f"/customers/{api_world.customer.pk}", {"is_vip": True, "labels": ["wholesale"]})
    assert response.status_code == 200
    customer = Customer.objects.get(pk=api_world.customer.pk)
    assert customer.is_vip
    assert customer.labels == ["wholesale"]
    assert customer.name == CUSTOMER_NAME
    entry = Entry.objects.get(target_type="customer", target_id=str(customer.pk), action="changed")
    assert entry.details["fields"] == ["is_vip", "labels"]


def test_patch_refuses_null_and_wrong_types_with_field_errors(api_world, as_alice):
    null = as_alice.patch(f"/customers/{api_world.customer.pk}", {"name": None})
    assert null.status_code == 422
    assert null.json()["errors"][0]["field"] == "body.name"
    wrong = as_alice.patch(f"/customers/{api_world.customer.pk}", {"is_vip": "maybe"})
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "body.is_vip"


def test_notes_list_and_add(api_world, as_alice):
    path = f"/customers/{api_world.customer.pk}/notes"
    assert [n["text"] for n in as_alice.get(path).json()["items"]] == ["marker-cnote-4d2"]
    added = as_alice.post(path, {"text": "Prefers email"})
    assert added.status_code == 201
    assert CustomerNote.objects.get(pk=added.json()["id"]).author_id == api_world.alice.pk
    assert Entry.objects.filter(target_type="customer note", target_id=str(added.json()["id"])).exists()
    assert as_alice.post(path, {"text": "   "}).status_code == 422


def test_a_merged_customer_answers_as_the_one_they_became(api_world, as_alice):
    merged = Customer.objects.create(name="Old record", merged_into=api_world.customer)
    assert as_alice.get(f"/customers/{merged.pk}").json()["id"] == api_world.customer.pk
