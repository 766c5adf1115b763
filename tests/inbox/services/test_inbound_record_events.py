"""Storing raw events in bulk: one statement per batch, the same dedupe as one at a time."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inbox.models import InboundEvent
from inbox.services import inbound

pytestmark = pytest.mark.django_db


def raw(key: str) -> inbound.RawEvent:
    return inbound.RawEvent(dedupe_key=key, body=f"body of {key}".encode(), headers={"uid": key})


def inserts(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT INTO")]


def test_a_batch_is_stored_with_one_insert_and_each_new_event_is_scheduled_once(
    sms, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks, CaptureQueriesContext(connection) as queries:
        created = inbound.record_inbound_events(
            channel=sms, endpoint="imap", events=[raw(f"k{n}") for n in range(60)], content_type="message/rfc822"
        )

    assert created == [True] * 60
    assert len(inserts(queries)) == 1
    stored = InboundEvent.objects.filter(channel=sms).order_by("pk")
    assert [e.dedupe_key for e in stored] == [f"k{n}" for n in range(60)]
    assert bytes(stored[3].body) == b"body of k3"
    assert stored[3].headers == {"uid": "k3"}
    assert stored[3].content_type == "message/rfc822"
    assert len(callbacks) == 1  # one after-commit hook enqueues the whole batch


def test_keys_already_stored_or_repeated_in_the_batch_are_stored_once(sms):
    inbound.record_inbound_event(channel=sms, endpoint="imap", dedupe_key="old", body=b"first copy")

    created = inbound.record_inbound_events(
        channel=sms, endpoint="imap", events=[raw("a"), raw("old"), raw("b"), raw("a")]
    )

    assert created == [True, False, True, False]
    assert InboundEvent.objects.filter(channel=sms).count() == 3
    assert bytes(InboundEvent.objects.get(dedupe_key="old").body) == b"first copy"


def test_the_same_key_on_another_channel_is_another_event(sms, whatsapp):
    inbound.record_inbound_events(channel=sms, endpoint="imap", events=[raw("same")])

    assert inbound.record_inbound_events(channel=whatsapp, endpoint="imap", events=[raw("same")]) == [True]


def test_big_batches_are_split_into_several_statements(sms):
    with CaptureQueriesContext(connection) as queries:
        created = inbound.record_inbound_events(channel=sms, endpoint="imap", events=[raw(f"k{n}") for n in range(250)])

    assert sum(created) == 250
    assert len(inserts(queries)) == 3
    assert InboundEvent.objects.filter(channel=sms).count() == 250


def test_an_empty_batch_writes_nothing(sms):
    with CaptureQueriesContext(connection) as queries:
        assert inbound.record_inbound_events(channel=sms, endpoint="imap", events=[]) == []
    assert inserts(queries) == []
