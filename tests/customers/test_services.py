"""Who the customer is: resolving addresses under races, normalising phones, linking identities, the
identities-and-notes half of a merge, and likely duplicates."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import close_old_connections, connection, transaction

from customers import services
from customers.models import Customer, Identity
from inbox.models import Message
from inbox.services import inbound
from inbox.transport import InboundMessage


def write(channel, address: str, provider_id: str, text: str = "Hi", name: str = "") -> Message:
    return inbound.receive_message(
        channel=channel, inbound=InboundMessage(provider_id=provider_id, address=address, text=text, name=name)
    )


# -- normalising ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "+15005550006",
        "+1 500 555 0006",
        "+1 (500) 555-0006",
        "1-500-555-0006",
        "(500) 555-0006",
        "500.555.0006",
        "15005550006",
        "whatsapp:+15005550006",
        "tel:+1-500-555-0006",
        "  +1 500 555 0006  ",
    ],
)
def test_every_way_of_writing_a_phone_number_gives_one_e164_value(written):
    assert services.normalise_phone(written) == "+15005550006"


def test_a_number_in_another_country_keeps_its_country_code():
    assert services.normalise_phone("+44 20 7946 0958") == "+442079460958"
    assert services.normalise_phone("020 7946 0958", region="GB") == "+442079460958"


@pytest.mark.parametrize("garbage", ["", "hello", "+1", "12", "not-a-number-at-all"])
def test_what_is_not_a_phone_number_is_refused(garbage):
    with pytest.raises(services.InvalidAddress):
        services.normalise_address(Identity.Kind.PHONE, garbage)


def test_an_email_address_is_stored_lower_case_and_one_without_at_is_refused():
    assert services.normalise_address(Identity.Kind.EMAIL, " Ana@Example.COM ") == "ana@example.com"
    with pytest.raises(services.InvalidAddress):
        services.normalise_address(Identity.Kind.EMAIL, "ana.example.com")


# -- resolving -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_number_written_two_ways_resolves_to_one_customer():
    with transaction.atomic():
        first, _ = services.resolve_customer(kind="phone", value="+1 500 555 0006", name="Ana")
        second, _ = services.resolve_customer(kind="phone", value="(500) 555-0006")
    assert first.pk == second.pk
    assert Identity.objects.get().value == "+15005550006"


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_two_processes_creating_the_same_new_identity_end_with_one_customer():
    if connection.vendor == "sqlite":
        pytest.skip(
            "SQLite takes its write lock at BEGIN (transaction_mode IMMEDIATE), so the two threads never "
            "overlap and there is no race to lose; this runs on PostgreSQL (set DATABASE_URL)."
        )
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def contact() -> None:
        try:
            with transaction.atomic():
                # Both look the address up before either inserts, then both try to create it.
                assert not Identity.objects.filter(value="+15005550077").exists()
                barrier.wait(timeout=10)
                customer, _ = services.resolve_customer(kind="phone", value="+1 500 555 0077")
                time.sleep(0.3)  # hold the transaction open so the other insert has to wait for it
            results.append(customer.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=contact) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(results) == 2
    assert results[0] == results[1]
    assert Identity.objects.filter(value="+15005550077").count() == 1
    assert Customer.objects.filter(identities__value="+15005550077").count() == 1
    assert Customer.objects.count() == 1
    # Both inserted a customer (ids 1 and 2) and the loser rolled back: the race really happened.
    assert Customer.objects.create().pk == 3


@pytest.mark.django_db
def test_an_address_owned_by_someone_else_is_never_moved_by_linking(customer):
    other = Customer.objects.create(name="Other")
    owned = services.link_identity(customer=other, kind="email", value="shared@example.com")
    result = services.link_identity(customer=customer, kind="email", value="SHARED@example.com")
    assert result.pk == owned.pk
    assert result.customer_id == other.pk


# -- the identities-and-notes half of a merge (the inbox moves conversations) ---------------------


@pytest.mark.django_db
def test_merging_identities_moves_identities_and_notes_and_records_what_the_caller_moved(alice):
    target = Customer.objects.create(name="")
    source = Customer.objects.create(name="Ana")
    services.link_identity(customer=target, kind="phone", value="+15005550006")
    services.link_identity(customer=source, kind="email", value="ana@example.com")
    services.add_customer_note(customer=source, author=alice, text="Wrote from work")

    with transaction.atomic():
        source, target = services.lock_for_merge(source=source, target=target)
        merge = services.merge_identities(source=source, target=target, by=alice, moved={"conversations": [7]})

    assert set(target.identities.values_list("value", flat=True)) == {"+15005550006", "ana@example.com"}
    assert list(target.notes.values_list("text", flat=True)) == ["Wrote from work"]
    source.refresh_from_db()
    target.refresh_from_db()
    assert source.merged_into_id == target.pk
    assert target.name == "Ana"  # a nameless target takes the source's name
    assert merge.merged_by == alice
    assert merge.moved["conversations"] == [7]
    assert len(merge.moved["identities"]) == 1
    assert len(merge.moved["notes"]) == 1


@pytest.mark.django_db
def test_undoing_identities_gives_back_exactly_the_identities_and_notes_moved(alice):
    target = Customer.objects.create(name="Ana")
    source = Customer.objects.create(name="Ana M.")
    services.link_identity(customer=target, kind="phone", value="+15005550006")
    services.link_identity(customer=source, kind="email", value="ana@example.com")
    services.add_customer_note(customer=source, author=alice, text="Wrote from work")
    with transaction.atomic():
        source, target = services.lock_for_merge(source=source, target=target)
        merge = services.merge_identities(source=source, target=target, by=alice, moved={})
    services.link_identity(customer=target, kind="email", value="ana@work.example")  # added after the merge

    restored = services.undo_identities(merge=merge, by=alice)

    assert restored.merged_into_id is None
    assert list(restored.identities.values_list("value", flat=True)) == ["ana@example.com"]
    assert list(restored.notes.values_list("text", flat=True)) == ["Wrote from work"]
    assert set(target.identities.values_list("value", flat=True)) == {"+15005550006", "ana@work.example"}
    merge.refresh_from_db()
    assert merge.undone_by == alice
    with pytest.raises(services.MergeError):
        services.undo_identities(merge=merge, by=alice)


@pytest.mark.django_db
def test_customers_that_cannot_be_merged_are_refused_before_anything_is_locked():
    ana = Customer.objects.create(name="Ana")
    gone = Customer.objects.create(name="Gone", merged_into=ana)
    with pytest.raises(services.MergeError, match="themselves"):
        services.lock_for_merge(source=ana, target=ana)
    with pytest.raises(services.MergeError, match="already merged"):
        services.lock_for_merge(source=gone, target=ana)


@pytest.mark.django_db
def test_a_verified_phone_is_linked_when_new_and_names_its_owner_when_known():
    ana = Customer.objects.create(name="Ana")
    assert services.claim_verified_phone(customer=ana, phone="+1 500 555 0006") == ana
    identity = Identity.objects.get(value="+15005550006")
    assert identity.customer == ana
    assert identity.verified

    on_telegram = Customer.objects.create(name="Ana on Telegram")
    assert services.claim_verified_phone(customer=on_telegram, phone="+15005550006") == ana
    assert not on_telegram.identities.exists()  # another customer's number is never moved


@pytest.mark.django_db
def test_a_verified_phone_of_a_merged_away_customer_names_the_one_they_became():
    ana = Customer.objects.create(name="Ana")
    old = Customer.objects.create(name="Old Ana")
    services.link_identity(customer=old, kind="phone", value="+15005550006")
    old.merged_into = ana
    old.save(update_fields=["merged_into"])
    on_viber = Customer.objects.create(name="Ana on Viber")
    assert services.claim_verified_phone(customer=on_viber, phone="+15005550006") == ana


# -- duplicates -----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "stored"),
    [
        ("whatsapp", "15005550006"),  # a WhatsApp id: the number without the plus
        ("phone", "5005550006"),  # the national number, from an import that did not normalise it
        ("phone", "+15005550006"),  # the same number as a WhatsApp id of the first customer
    ],
)
def test_the_same_phone_in_another_form_is_suggested(kind, stored):
    ana = Customer.objects.create(name="Ana")
    Identity.objects.create(customer=ana, kind="whatsapp" if stored.startswith("+") else "phone", value="+15005550006")
    imported = Customer.objects.create(name="A. Silva")
    Identity.objects.create(customer=imported, kind=kind, value=stored)
    suggestions = services.suggest_duplicates(customer=ana)
    assert [(other.pk, reason) for other, reason in suggestions] == [(imported.pk, "same phone number")]


@pytest.mark.django_db
def test_a_phone_number_typed_into_the_profile_finds_its_owner():
    ana = Customer.objects.create(name="Ana", attributes={"phone": "+1 (500) 555-0006"})
    owner = Customer.objects.create()
    Identity.objects.create(customer=owner, kind="phone", value="+15005550006")
    assert [(c.pk, reason) for c, reason in services.suggest_duplicates(customer=ana)] == [
        (owner.pk, "same phone in profile")
    ]


@pytest.mark.django_db
def test_the_same_email_in_another_case_is_suggested():
    ana = Customer.objects.create(name="Ana")
    Identity.objects.create(customer=ana, kind="email", value="ana@example.com")
    other = Customer.objects.create(name="Someone else")
    Identity.objects.create(customer=other, kind="email", value="Ana@Example.com")
    assert [(c.pk, reason) for c, reason in services.suggest_duplicates(customer=ana)] == [
        (other.pk, "same email address")
    ]


@pytest.mark.django_db
def test_the_same_name_alone_is_never_a_duplicate():
    ana = Customer.objects.create(name="Ana Silva")
    Identity.objects.create(customer=ana, kind="email", value="ana@example.com")
    namesake = Customer.objects.create(name="Ana Silva")
    Identity.objects.create(customer=namesake, kind="email", value="asilva@example.org")
    Customer.objects.create(name="Ana Silva")
    assert services.suggest_duplicates(customer=ana) == []


@pytest.mark.django_db
def test_a_customer_already_merged_away_is_not_suggested(alice):
    ana = Customer.objects.create(name="Ana")
    Identity.objects.create(customer=ana, kind="phone", value="+15005550006")
    old = Customer.objects.create(name="Old")
    Identity.objects.create(customer=old, kind="phone", value="5005550006")
    old.merged_into = Customer.objects.create(name="Somewhere")
    old.save()
    assert services.suggest_duplicates(customer=ana) == []
