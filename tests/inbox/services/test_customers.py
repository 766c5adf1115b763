"""Customer merges as the inbox runs them: identities, notes, conversations and messages move, and back."""

from __future__ import annotations

import pytest

from customers import services
from customers.models import CustomerMerge, CustomerNote
from inbox.models import Conversation, Message
from inbox.services import channels, inbound
from inbox.services.customers import link_verified_phone, merge_customers, undo_merge
from inbox.transport import InboundMessage


def write(channel, address: str, provider_id: str, text: str = "Hi", name: str = "") -> Message:
    return inbound.receive_message(
        channel=channel, inbound=InboundMessage(provider_id=provider_id, address=address, text=text, name=name)
    )


# -- merging --------------------------------------------------------------------------------------


@pytest.fixture
def two_customers(sms, support, alice):
    """The same person, once on SMS and once by email, each with a note."""
    email_channel = channels.create_channel(
        kind="simulator", name="Email", team=support, channel_settings={"medium": "email"}
    )
    by_sms = write(sms, "+15005550006", "s1", "My order broke", name="Ana").customer
    by_email = write(email_channel, "ana@example.com", "e1", "Following up", name="Ana M.").customer
    services.add_customer_note(customer=by_sms, author=alice, text="Prefers SMS")
    services.add_customer_note(customer=by_email, author=alice, text="Wrote from work")
    return by_sms, by_email


@pytest.mark.django_db
def test_merge_moves_identities_conversations_messages_and_notes_and_records_it(two_customers, alice):
    target, source = two_customers
    source_conversation = Conversation.objects.get(customer=source)
    merge = merge_customers(source=source, target=target, by=alice)

    assert set(target.identities.values_list("value", flat=True)) == {"+15005550006", "ana@example.com"}
    assert Conversation.objects.filter(customer=target).count() == 2
    assert not Message.objects.filter(customer=source).exists()
    assert Message.objects.filter(conversation=source_conversation, customer=target).exists()
    assert set(CustomerNote.objects.filter(customer=target).values_list("text", flat=True)) == {
        "Prefers SMS",
        "Wrote from work",
    }
    source.refresh_from_db()
    assert source.merged_into_id == target.pk
    assert merge.merged_by == alice
    assert merge.moved["conversations"] == [source_conversation.pk]
    # Both had an open conversation: only one may stay open.
    assert Conversation.objects.filter(customer=target).open().count() == 1
    assert Message.objects.filter(kind="activity", metadata__action="merged", customer=target).exists()


@pytest.mark.django_db
def test_undo_gives_back_exactly_what_the_merge_moved(two_customers, alice):
    target, source = two_customers
    merge = merge_customers(source=source, target=target, by=alice)
    restored = undo_merge(merge=merge, by=alice)

    assert restored.pk == source.pk
    assert restored.merged_into_id is None
    assert list(source.identities.values_list("value", flat=True)) == ["ana@example.com"]
    assert list(target.identities.values_list("value", flat=True)) == ["+15005550006"]
    assert Conversation.objects.filter(customer=source).count() == 1
    assert list(source.notes.values_list("text", flat=True)) == ["Wrote from work"]
    assert Message.objects.filter(customer=source, kind="message").count() == 1
    merge.refresh_from_db()
    assert merge.undone_at is not None
    assert merge.undone_by == alice


@pytest.mark.django_db
def test_a_customer_cannot_be_merged_into_themselves(customer, alice):
    with pytest.raises(services.MergeError):
        merge_customers(source=customer, target=customer, by=alice)
    assert not CustomerMerge.objects.exists()


@pytest.mark.django_db
def test_a_customer_cannot_be_merged_twice(two_customers, alice):
    target, source = two_customers
    merge_customers(source=source, target=target, by=alice)
    source.refresh_from_db()
    with pytest.raises(services.MergeError):
        merge_customers(source=source, target=target, by=alice)
    assert CustomerMerge.objects.count() == 1


@pytest.mark.django_db
def test_a_merge_cannot_be_undone_twice(two_customers, alice):
    target, source = two_customers
    merge = merge_customers(source=source, target=target, by=alice)
    undo_merge(merge=merge, by=alice)
    with pytest.raises(services.MergeError):
        undo_merge(merge=merge, by=alice)


# -- a phone number the customer proved to own --------------------------------------------------


@pytest.mark.django_db
def test_a_verified_phone_of_another_customer_merges_this_one_into_them_conversations_and_all(two_customers):
    by_sms, by_email = two_customers
    email_conversation = Conversation.objects.get(customer=by_email)

    owner = link_verified_phone(customer=by_email, phone="+1 500 555 0006")

    assert owner == by_sms
    by_email.refresh_from_db()
    assert by_email.merged_into_id == by_sms.pk
    email_conversation.refresh_from_db()
    assert email_conversation.customer_id == by_sms.pk
    assert CustomerMerge.objects.get().merged_by is None  # the customer proved it, not an operator


@pytest.mark.django_db
def test_a_verified_phone_nobody_has_is_just_linked(two_customers):
    _by_sms, by_email = two_customers
    assert link_verified_phone(customer=by_email, phone="+15005550099") == by_email
    assert not CustomerMerge.objects.exists()
    assert by_email.identities.filter(kind="phone", value="+15005550099", verified=True).exists()
