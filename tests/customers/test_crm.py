"""The customer data a CRM shares: external ids, typed attributes, upserts that never merge, the CRM link."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from audit.models import Entry
from customers.crm import (
    CrmConflict,
    check_link_template,
    clean_attributes,
    crm_link,
    definitions_for,
    upsert_customer,
)
from customers.models import AttributeDefinition, Customer, Identity
from customers.services import resolve_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(db):
    return AttributeDefinition.objects.create(key="plan", label="Plan", type="choice", choices=["free", "pro"])


@pytest.fixture
def typed(plan, support):
    AttributeDefinition.objects.create(key="orders", label="Orders", type="number")
    AttributeDefinition.objects.create(key="since", label="Customer since", type="date")
    AttributeDefinition.objects.create(key="invoice", label="Invoice", type="link", team=support)


def test_external_id_is_unique_when_set_and_blank_ids_may_repeat():
    Customer.objects.create(name="A")
    Customer.objects.create(name="B")  # two blank ids are fine
    Customer.objects.create(name="C", external_id="crm-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(name="D", external_id="crm-1")


def test_typed_values_are_validated_and_stored_typed(typed):
    cleaned = clean_attributes(
        {"plan": "pro", "orders": "12", "since": "2024-02-29", "invoice": "https://billing.example/1", "note": "x"},
        current={},
    )
    assert cleaned == {
        "plan": "pro",
        "orders": 12,
        "since": "2024-02-29",
        "invoice": "https://billing.example/1",
        "note": "x",
    }
    assert clean_attributes({"orders": "2.5"}, current={})["orders"] == 2.5
    assert clean_attributes({"plan": ""}, current={"plan": "pro", "keep": 1}) == {"keep": 1}


def test_bad_values_give_one_error_per_key(typed):
    with pytest.raises(ValidationError) as caught:
        clean_attributes(
            {"plan": "gold", "orders": "many", "since": "31/12/2024", "invoice": "javascript:alert(1)"}, current={}
        )
    assert set(caught.value.message_dict) == {"plan", "orders", "since", "invoice"}
    assert "free, pro" in caught.value.message_dict["plan"][0]


def test_team_scoped_definitions_are_seen_by_that_team_only(typed, support, sales):
    assert "invoice" in {d.key for d in definitions_for([support.pk])}
    assert "invoice" not in {d.key for d in definitions_for([sales.pk])}
    assert "plan" in {d.key for d in definitions_for([sales.pk])}


def test_a_choice_attribute_needs_choices():
    with pytest.raises(ValidationError):
        AttributeDefinition(key="tier", label="Tier", type="choice", choices=[]).full_clean()


def test_upsert_creates_then_matches_by_external_id_email_then_phone(plan):
    first = upsert_customer(external_id="crm-1", email="Ann@Example.com", name="Ann", attributes={"plan": "free"})
    assert first.created
    customer = first.customer
    assert customer.external_id == "crm-1"
    assert set(customer.identities.values_list("kind", "value")) == {("email", "ann@example.com")}
    again = upsert_customer(external_id="crm-1", attributes={"plan": "pro"})
    assert not again.created
    assert again.customer.pk == customer.pk
    assert again.customer.attributes == {"plan": "pro"}
    by_email = upsert_customer(email="ann@example.com", phone="+1 500-555-0006")
    assert by_email.customer.pk == customer.pk
    assert customer.identities.filter(kind="phone", value="+15005550006", verified=False).exists()
    by_phone = upsert_customer(phone="+15005550006", name="Ann Smith")
    assert by_phone.customer.pk == customer.pk
    assert Customer.objects.get(pk=customer.pk).name == "Ann Smith"
    assert Customer.objects.count() == 1
    assert Entry.objects.filter(action__in=["created", "changed"], target_type="customer").count() >= 3


def test_upsert_gives_an_existing_customer_found_by_email_the_crm_id():
    with transaction.atomic():
        known, _identity = resolve_customer(kind="email", value="bo@example.com", name="Bo")
    result = upsert_customer(external_id="crm-7", email="bo@example.com")
    assert result.customer.pk == known.pk
    assert Customer.objects.get(pk=known.pk).external_id == "crm-7"


def test_upsert_never_merges_two_customers_and_names_the_conflicting_field():
    upsert_customer(external_id="crm-1", email="a@example.com")
    upsert_customer(external_id="crm-2", email="b@example.com")
    with pytest.raises(CrmConflict) as caught:
        upsert_customer(external_id="crm-1", email="b@example.com")
    assert list(caught.value.message_dict) == ["email"]
    with pytest.raises(CrmConflict) as caught:
        upsert_customer(external_id="crm-3", email="a@example.com")  # a has crm-1 already
    assert list(caught.value.message_dict) == ["external_id"]
    assert Customer.objects.count() == 2
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"crm-1", "crm-2"}


def test_upsert_never_matches_on_a_name():
    upsert_customer(email="a@example.com", name="Same Name")
    second = upsert_customer(email="b@example.com", name="Same Name")
    assert second.created
    assert Customer.objects.filter(name="Same Name").count() == 2


def test_upsert_rejects_bad_input_without_writing(plan):
    with pytest.raises(ValidationError) as caught:
        upsert_customer(external_id="crm-9", email="nope", name="X")
    assert "email" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        upsert_customer(external_id="crm-9", attributes={"plan": "gold"})
    assert "attributes.plan" in caught.value.message_dict
    with pytest.raises(ValidationError):
        upsert_customer(name="Only a name")
    assert not Customer.objects.exists()
    assert not Identity.objects.exists()


def test_crm_link_template_is_checked_and_the_id_cannot_escape_the_url():
    template = check_link_template(" https://crm.example.com/contacts/{external_id} ")
    assert crm_link(template, "42") == "https://crm.example.com/contacts/42"
    assert crm_link(template, "../../evil?x=1#y") == "https://crm.example.com/contacts/..%2F..%2Fevil%3Fx%3D1%23y"
    assert crm_link(template, "") == ""
    for bad in ["javascript:alert(1)//{external_id}", "https://crm.example.com/contacts/", "crm/{external_id}"]:
        with pytest.raises(ValidationError):
            check_link_template(bad)
