"""Webhooks out: written with the change, signed per Standard Webhooks, retried, in order, switched off
when they keep failing, logged and replayable. The receiver is a real HTTP server on loopback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from audit.models import Entry
from hooks import services
from hooks.models import Delivery, Subscription
from inbox.services import conversations
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.conftest import free_port

ALL = list(services.EVENT_NAMES)


def inbound(provider_id: str, address: str = "+15005550006") -> InboundMessage:
    return InboundMessage(provider_id=provider_id, address=address, text="Hi", name="Ann")


def subscribe(url: str, events: list[str] | None = None, team=None, by=None) -> tuple[Subscription, str]:
    return services.create_subscription(name="CRM", url=url, events=events or ALL, team=team, by=by)


def drain(subscription: Subscription) -> None:
    """What the worker does: drain every key that has a due delivery."""
    keys = set(
        Delivery.objects.filter(subscription=subscription, status="pending").values_list("ordering_key", flat=True)
    )
    for key in sorted(keys):
        services.deliver_queue(subscription_id=subscription.pk, ordering_key=key)


def make_due(subscription: Subscription) -> None:
    Delivery.objects.filter(subscription=subscription, status="pending").update(next_attempt_at=timezone.now())


def test_deliveries_are_written_in_the_writers_transaction_and_vanish_on_rollback(sms, receiver):
    subscription, _secret = subscribe(receiver.base_url)
    written = []

    def receive_then_fail() -> None:
        with transaction.atomic():
            receive_message(channel=sms, inbound=inbound("a"))
            written.append(Delivery.objects.filter(subscription=subscription).count())
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        receive_then_fail()
    assert written == [3]
    assert not Delivery.objects.exists()
    receive_message(channel=sms, inbound=inbound("a"))
    assert sorted(Delivery.objects.values_list("event", flat=True)) == [
        "conversation.created",
        "customer.created",
        "message.created",
    ]


def test_a_delivery_is_signed_per_standard_webhooks_and_carries_ids(sms, receiver):
    subscription, secret = subscribe(receiver.base_url, events=["message.created"])
    assert secret.startswith("whsec_")
    message = receive_message(channel=sms, inbound=inbound("a"))
    drain(subscription)
    assert len(receiver.received) == 1
    headers, body, _at = receiver.received[0]
    payload = Webhook(secret).verify(body, headers)  # raises unless the signature is right
    assert payload["type"] == "message.created"
    assert payload["data"] == {
        "message_id": message.pk,
        "conversation_id": message.conversation_id,
        "customer_id": message.customer_id,
        "kind": "inbound",
    }
    delivery = Delivery.objects.get()
    assert headers["webhook-id"] == delivery.event_id
    assert delivery.status == "delivered"
    assert delivery.attempts == 1
    assert delivery.response_code == 200
    assert delivery.latency_ms is not None
    with pytest.raises(Exception, match="signature"):
        Webhook(services.new_secret()).verify(body, headers)


def test_only_the_chosen_events_are_delivered(sms, alice, receiver):
    subscribe(receiver.base_url, events=["conversation.resolved"])
    message = receive_message(channel=sms, inbound=inbound("a"))
    assert not Delivery.objects.exists()
    conversations.resolve_conversation(conversation=message.conversation, by=alice)
    assert list(Delivery.objects.values_list("event", flat=True)) == ["conversation.resolved"]


def test_a_teams_subscription_gets_only_its_teams_conversations(sms, sales, receiver):
    subscribe(receiver.base_url, team=sales)
    receive_message(channel=sms, inbound=inbound("a"))  # a Support conversation
    assert not Delivery.objects.exists()


def test_5xx_is_retried_with_backoff_then_delivered_with_the_same_id(sms, receiver):
    subscription, secret = subscribe(receiver.base_url, events=["message.created"])
    receiver.answers = [503]
    receive_message(channel=sms, inbound=inbound("a"))
    retry_in = services.deliver_queue(subscription_id=subscription.pk, ordering_key=Delivery.objects.get().ordering_key)
    delivery = Delivery.objects.get()
    assert delivery.status == "pending"
    assert delivery.response_code == 503
    assert delivery.attempts == 1
    assert retry_in is not None
    assert 5 < retry_in < 15  # the first retry after ~10 s
    drain(subscription)  # not due yet: nothing sent
    assert len(receiver.received) == 1
    make_due(subscription)
    drain(subscription)
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert delivery.attempts == 2
    first, second = receiver.received[0][0], receiver.received[1][0]
    assert first["webhook-id"] == second["webhook-id"]
    Webhook(secret).verify(receiver.received[1][1], second)


def test_the_backoff_doubles_and_keeps_trying_for_a_day():
    for attempts, seconds in ((1, 10), (2, 20), (3, 40), (4, 80), (10, 5120)):
        assert seconds * 0.9 <= services.backoff(attempts) <= seconds * 1.1  # ±10 % jitter
    assert services.backoff(30) <= 4 * 3600 * 1.1
    assert services.backoff(30) >= 4 * 3600 * 0.9


def test_timeouts_and_refused_connections_are_retried(sms, settings, receiver):
    settings.PARLEY_HOOKS_TIMEOUT = 0.3
    subscription, _secret = subscribe(receiver.base_url, events=["message.created"])
    receiver.answers = ["slow"]
    receive_message(channel=sms, inbound=inbound("a"))
    drain(subscription)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.error) == ("pending", "Timed out.")
    closed, _secret = subscribe(f"http://127.0.0.1:{free_port()}/hook", events=["message.created"])
    receive_message(channel=sms, inbound=inbound("b", "+15005550007"))
    drain(closed)
    refused = Delivery.objects.get(subscription=closed)
    assert refused.status == "pending"
    assert refused.error.startswith("Could not connect")


def test_events_of_one_conversation_wait_for_an_earlier_undelivered_one(sms, alice, receiver):
    subscription, _secret = subscribe(receiver.base_url, events=["message.created", "conversation.resolved"])
    message = receive_message(channel=sms, inbound=inbound("a"))
    conversations.resolve_conversation(conversation=message.conversation, by=alice)
    other = receive_message(channel=sms, inbound=inbound("b", "+15005550007"))  # another conversation
    receiver.answers = [500]
    drain(subscription)
    # The first conversation's message failed: its resolution waits; the other conversation went out.
    sent = [(b["type"], b["data"]["conversation_id"]) for b in receiver.bodies()]
    assert sent == [("message.created", message.conversation_id), ("message.created", other.conversation_id)]
    assert Delivery.objects.get(event="conversation.resolved").attempts == 0
    make_due(subscription)
    drain(subscription)
    sent = [b["type"] for b in receiver.bodies() if b["data"]["conversation_id"] == message.conversation_id]
    assert sent == ["message.created", "message.created", "conversation.resolved"]


def test_a_4xx_gives_up_on_that_delivery_and_the_queue_moves_on(sms, alice, receiver):
    subscription, _secret = subscribe(receiver.base_url, events=["message.created", "conversation.resolved"])
    message = receive_message(channel=sms, inbound=inbound("a"))
    conversations.resolve_conversation(conversation=message.conversation, by=alice)
    receiver.answers = [410]
    drain(subscription)
    assert dict(Delivery.objects.values_list("event", "status")) == {
        "message.created": "failed",
        "conversation.resolved": "delivered",
    }


def test_retrying_stops_after_the_retry_window(sms, settings, receiver):
    settings.PARLEY_HOOKS_RETRY_HOURS = 0
    subscription, _secret = subscribe(receiver.base_url, events=["message.created"])
    receiver.answers = [500]
    receive_message(channel=sms, inbound=inbound("a"))
    drain(subscription)
    assert Delivery.objects.get().status == "failed"


def test_a_subscription_that_keeps_failing_is_switched_off_and_staff_are_told(sms, settings, receiver):
    settings.PARLEY_HOOKS_DISABLE_AFTER_FAILURES = 2
    settings.ADMINS = [("Ops", "ops@example.test")]
    subscription, _secret = subscribe(receiver.base_url, events=["message.created"])
    receiver.answers = [500, 500]
    receive_message(channel=sms, inbound=inbound("a"))
    receive_message(channel=sms, inbound=inbound("b", "+15005550007"))
    drain(subscription)
    subscription.refresh_from_db()
    assert not subscription.is_active
    assert "2 failed attempts" in subscription.disabled_reason
    assert any("switched off" in m.subject for m in mail.outbox)
    assert Entry.objects.filter(target_type="subscription", details__switched_off=True).exists()
    receive_message(channel=sms, inbound=inbound("c", "+15005550008"))
    assert Delivery.objects.count() == 2  # a switched-off subscription gets nothing new
    services.update_subscription(subscription=subscription, by=None, is_active=True)
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 0
    make_due(subscription)
    drain(subscription)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_failing_for_days_switches_a_subscription_off(sms, receiver):
    subscription, _secret = subscribe(receiver.base_url, events=["message.created"])
    Subscription.objects.filter(pk=subscription.pk).update(
        consecutive_failures=5, failing_since=timezone.now() - timedelta(days=3, minutes=1)
    )
    receiver.answers = [500]
    receive_message(channel=sms, inbound=inbound("a"))
    drain(subscription)
    subscription.refresh_from_db()
    assert not subscription.is_active


def test_replay_sends_a_delivered_event_again_with_its_id(sms, receiver):
    subscription, _secret = subscribe(receiver.base_url, events=["message.created"])
    receive_message(channel=sms, inbound=inbound("a"))
    drain(subscription)
    assert services.replay_deliveries(deliveries=Delivery.objects.all(), by=None) == 1
    drain(subscription)
    assert len(receiver.received) == 2
    assert receiver.received[0][0]["webhook-id"] == receiver.received[1][0]["webhook-id"]
    assert Delivery.objects.get().attempts == 2


def test_two_workers_never_send_one_delivery_twice(sms, receiver):
    subscription, _secret = subscribe(receiver.base_url, events=["message.created"])
    receive_message(channel=sms, inbound=inbound("a"))
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(leased_until=timezone.now() + timedelta(seconds=30))
    assert services.deliver_queue(subscription_id=subscription.pk, ordering_key=delivery.ordering_key) is None
    assert receiver.received == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://93.184.216.34/parley", True),  # a literal public address: no DNS lookup in tests
        ("http://hooks.example.com/parley", False),
        ("ftp://hooks.example.com/x", False),
        ("https://user:pw@hooks.example.com/", False),
        ("http://127.0.0.1:8000/hook", False),
        ("https://127.0.0.1/hook", False),
        ("https://10.0.0.5/hook", False),
        ("https://169.254.169.254/latest", False),
    ],
)
def test_urls_must_be_https_outside_private_networks(settings, url, allowed):
    settings.PARLEY_HOOKS_ALLOW_PRIVATE = False
    if allowed:
        assert services.check_url(url) == url
    else:
        with pytest.raises(ValidationError):
            services.check_url(url)


def test_plain_http_is_allowed_for_a_loopback_receiver_in_development(settings):
    settings.PARLEY_HOOKS_ALLOW_PRIVATE = True
    assert services.check_url("http://127.0.0.1:8000/hook")
    with pytest.raises(ValidationError):
        services.check_url("http://hooks.example.com/parley")


def test_unknown_events_are_refused(db):
    with pytest.raises(ValidationError):
        services.check_events(["message.deleted"])
    with pytest.raises(ValidationError):
        services.check_events([])


def test_old_settled_deliveries_are_pruned_and_pending_ones_kept(sms, receiver):
    _subscription, _secret = subscribe(receiver.base_url, events=["message.created"])
    receive_message(channel=sms, inbound=inbound("a"))
    receive_message(channel=sms, inbound=inbound("b", "+15005550007"))
    first, second = Delivery.objects.order_by("id")
    Delivery.objects.filter(pk=first.pk).update(status="delivered")
    Delivery.objects.update(created_at=timezone.now() - timedelta(days=31))
    assert services.prune_deliveries() == 1
    assert list(Delivery.objects.values_list("pk", flat=True)) == [second.pk]
