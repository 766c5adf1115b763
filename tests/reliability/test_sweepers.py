"""The outbox sweeper settles a send whose worker died within seconds, and never touches one a live
worker is sending or a retry that is not due yet. PostgreSQL only: a live sender is told by its
session's advisory lock (common.db.session_lock)."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.utils import timezone

from common import db
from inbox.models import Message
from inbox.services import outbound
from tests.conftest import database_url
from tests.fakes.meta import meta_channel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql() -> None:
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("a live sender is told by a PostgreSQL advisory lock")


@pytest.fixture
def messenger(support):
    # Meta's Send API has no idempotency key: a send whose outcome is unknown must not be repeated.
    return meta_channel("messenger", team=support)


def sending(channel, customer, *, seconds_ago: float) -> Message:
    from inbox.models import Conversation

    conversation = Conversation.objects.create(customer=customer, team=channel.team, last_message_at=timezone.now())
    return Message.objects.create(
        conversation=conversation,
        customer=customer,
        channel=channel,
        direction="out",
        sender="operator",
        text="Your refund is on its way",
        address="12345",
        status="sending",
        attempts=1,
        status_changed_at=timezone.now() - timedelta(seconds=seconds_ago),
        created_at=timezone.now(),
    )


def test_a_send_whose_worker_died_without_an_idempotency_key_fails_visibly_in_seconds(messenger, customer):
    orphan = sending(messenger, customer, seconds_ago=15)
    outbound.sweep_outbox()
    orphan.refresh_from_db()
    assert orphan.status == "failed"
    assert "may not have been sent" in orphan.status_reason
    assert "Check with the customer before resending" in orphan.status_reason


def test_a_send_a_live_worker_still_holds_is_left_alone(messenger, customer):
    slow = sending(messenger, customer, seconds_ago=60)
    with psycopg.connect(database_url().replace("postgres://", "postgresql://", 1), autocommit=True) as worker:
        worker.execute("SELECT pg_advisory_lock(%s, %s)", [outbound.SENDING_LOCKS, slow.pk % db.LOCK_KEYS])
        outbound.sweep_outbox()
        assert Message.objects.get(pk=slow.pk).status == "sending"
    # The worker's session ended (it died): its lock went with it.
    outbound.sweep_outbox()
    assert Message.objects.get(pk=slow.pk).status == "failed"


def test_a_retry_that_is_not_due_yet_is_not_enqueued_early(sms, customer):
    waiting = sending(sms, customer, seconds_ago=0)
    Message.objects.filter(pk=waiting.pk).update(
        status="queued", status_changed_at=timezone.now() + timedelta(seconds=120)
    )
    assert waiting.pk not in outbound.sweep_outbox()
    Message.objects.filter(pk=waiting.pk).update(status_changed_at=timezone.now() - timedelta(seconds=11))
    assert waiting.pk in outbound.sweep_outbox()
