"""Processing a batch of stored events (an import): one load, one mark, each message on its own."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inbox.models import InboundEvent, Message
from inbox.services import inbound

pytestmark = pytest.mark.django_db


def stored(channel, key: str, payload: dict) -> InboundEvent:
    event, created = inbound.record_inbound_event(
        channel=channel, endpoint="inbound", dedupe_key=key, body=json.dumps(payload).encode()
    )
    assert created
    return event


def test_a_batch_lands_every_readable_message_and_fails_only_the_unreadable_one(sms):
    good = [stored(sms, f"m{n}", {"id": f"m{n}", "from": f"+1500555010{n}", "text": f"hello {n}"}) for n in range(3)]
    unreadable = stored(sms, "bad", {"id": "bad", "text": "no sender"})
    done = stored(sms, "done", {"id": "done", "from": "+15005550109", "text": "already in"})
    inbound.process_inbound_event(event_id=done.pk)

    with CaptureQueriesContext(connection) as queries:
        again = inbound.process_inbound_events(event_ids=[e.pk for e in [*good, unreadable, done]])

    assert again == []
    assert sorted(Message.objects.filter(channel=sms).values_list("text", flat=True)) == [
        "already in",
        "hello 0",
        "hello 1",
        "hello 2",
    ]
    statuses = dict(InboundEvent.objects.values_list("dedupe_key", "status"))
    assert statuses == {"m0": "processed", "m1": "processed", "m2": "processed", "bad": "failed", "done": "processed"}
    assert "'from' is required" in InboundEvent.objects.get(dedupe_key="bad").error
    loads = [q for q in queries.captured_queries if 'FROM "inbox_inboundevent"' in q["sql"] and "SELECT" in q["sql"]]
    marks = [q for q in queries.captured_queries if q["sql"].startswith('UPDATE "inbox_inboundevent"')]
    assert len(loads) == 1
    assert len(marks) == 2  # the unreadable one failed, then the three good ones at once


def test_running_a_batch_twice_stores_each_message_once(sms):
    events = [stored(sms, f"m{n}", {"id": f"m{n}", "from": "+15005550111", "text": f"part {n}"}) for n in range(4)]

    inbound.process_inbound_events(event_ids=[e.pk for e in events])
    InboundEvent.objects.update(status=InboundEvent.Status.PENDING)  # as if the worker died before the mark
    inbound.process_inbound_events(event_ids=[e.pk for e in events])

    assert Message.objects.filter(channel=sms).count() == 4
    assert Message.objects.filter(channel=sms).values("conversation").distinct().count() == 1


def test_an_import_is_scheduled_twenty_five_events_to_a_task(sms, django_capture_on_commit_callbacks, monkeypatch):
    from inbox import tasks

    batches: list[list[int]] = []
    monkeypatch.setattr(tasks.process_inbound_events, "delay", batches.append)
    raw = [inbound.RawEvent(dedupe_key=f"k{n}", body=b"{}") for n in range(60)]

    with django_capture_on_commit_callbacks(execute=True):
        inbound.record_inbound_events(channel=sms, endpoint="imap", events=raw)

    assert [len(batch) for batch in batches] == [25, 25, 10]
    assert sorted(pk for batch in batches for pk in batch) == sorted(InboundEvent.objects.values_list("pk", flat=True))


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_events_whose_task_was_lost_are_swept_into_threads_by_the_worker(stack, sms):
    from datetime import timedelta

    from django.utils import timezone

    from tests.conftest import wait_for

    # Stored, but their tasks never reached the broker (say it was restarting): no enqueue here.
    long_ago = timezone.now() - timedelta(minutes=5)
    lost = [
        InboundEvent.objects.create(
            channel=sms,
            endpoint="inbound",
            dedupe_key=f"lost{n}",
            body=json.dumps({"id": f"lost{n}", "from": f"+150055502{n:02d}", "text": f"still here {n}"}).encode(),
        )
        for n in range(30)
    ]
    InboundEvent.objects.filter(pk__in=[e.pk for e in lost]).update(received_at=long_ago)
    just_now = InboundEvent.objects.create(
        channel=sms,
        endpoint="inbound",
        dedupe_key="fresh",
        body=json.dumps({"id": "fresh", "from": "+15005550299", "text": "its task may still come"}).encode(),
    )

    swept = inbound.sweep_inbound_events()

    assert sorted(swept) == sorted(e.pk for e in lost)
    wait_for(lambda: Message.objects.filter(channel=sms).count() == 30, timeout=30)
    assert set(Message.objects.filter(channel=sms).values_list("text", flat=True)) == {
        f"still here {n}" for n in range(30)
    }
    # A batch marks its events processed after its messages are in (one UPDATE at the end): wait for it.
    wait_for(
        lambda: not InboundEvent.objects.filter(pk__in=swept).exclude(status=InboundEvent.Status.PROCESSED).exists(),
        timeout=30,
    )
    assert InboundEvent.objects.get(pk=just_now.pk).status == InboundEvent.Status.PENDING
