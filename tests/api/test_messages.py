"""Messages through the API: the thread as the UI shows it, replies and notes through the inbox's
outbox, and ``Idempotency-Key``: a retry (even a concurrent one) never sends twice."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
from django.db import connection

from api import tokens
from audit.models import Entry
from connectors import simulator
from inbox.models import Conversation, Message
from tests.api.conftest import Api, receive
from tests.conftest import wait_for


def test_the_thread_lists_the_customers_timeline_oldest_first_with_pages(api_world, as_alice):
    for n in range(3):
        receive(api_world.sms, f"SM-more-{n}", f"follow-up {n}")
    conversation = api_world.conversation.pk
    first = as_alice.get(f"/conversations/{conversation}/messages", limit=2).json()
    assert [m["text"] for m in first["items"]] == ["follow-up 1", "follow-up 2"]
    older = as_alice.get(f"/conversations/{conversation}/messages", limit=2, cursor=first["older_cursor"]).json()
    assert [m["text"] for m in older["items"]] == ["marker-note-9c1", "follow-up 0"]
    assert first["items"][0]["conversation_id"] == conversation


def test_a_reply_goes_through_the_outbox_as_from_the_reply_box(api_world, as_alice):
    response = as_alice.post(
        f"/conversations/{api_world.conversation.pk}/messages", {"type": "reply", "text": "It ships today."}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    message = Message.objects.get(pk=body["id"])
    assert message.direction == Message.Direction.OUTBOUND
    assert message.status == Message.Status.QUEUED
    assert message.channel_id == api_world.sms.pk  # the channel the customer last wrote on
    assert message.author_id == api_world.alice.pk
    assert message.address == "+15005550006"
    # As from the reply box: an unassigned conversation goes to whoever answers.
    assert Conversation.objects.get(pk=api_world.conversation.pk).assignee_id == api_world.alice.pk
    entry = Entry.objects.get(target_type="message", target_id=str(message.pk))
    assert entry.actor == "alice"
    assert entry.details["via"] == "api"


def test_a_private_note_is_stored_and_never_queued(api_world, as_alice):
    response = as_alice.post(f"/conversations/{api_world.conversation.pk}/messages", {"type": "note", "text": "VIP"})
    assert response.status_code == 201
    message = Message.objects.get(pk=response.json()["id"])
    assert message.kind == Message.Kind.NOTE
    assert message.status == ""


def test_a_reply_on_a_channel_the_customer_cannot_be_reached_on_is_a_422_naming_the_field(api_world, as_alice):
    response = as_alice.post(
        f"/conversations/{api_world.conversation.pk}/messages",
        {"type": "reply", "text": "Hi", "channel_id": 999_999},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.channel_id"


def test_a_reply_the_channel_refuses_is_a_409_and_stores_nothing(api_world, as_alice):
    api_world.sms.is_active = False
    api_world.sms.save(update_fields=["is_active"])
    count = Message.objects.count()
    response = as_alice.post(f"/conversations/{api_world.conversation.pk}/messages", {"text": "Hi"})
    assert response.status_code == 409
    assert "switched off" in response.json()["detail"]
    assert Message.objects.count() == count


def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer_and_sends_once(api_world, as_alice):
    path = f"/conversations/{api_world.conversation.pk}/messages"
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = as_alice.post(path, {"text": "Once only"}, headers=key)
    second = as_alice.post(path, {"text": "Once only"}, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Message.objects.filter(text="Once only").count() == 1


def test_the_same_key_with_another_request_is_refused(api_world, as_alice):
    path = f"/conversations/{api_world.conversation.pk}/messages"
    key = {"Idempotency-Key": "order-42-shipped"}
    assert as_alice.post(path, {"text": "Shipped"}, headers=key).status_code == 201
    other = as_alice.post(path, {"text": "Something else"}, headers=key)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "header.Idempotency-Key"
    assert not Message.objects.filter(text="Something else").exists()


def test_keys_belong_to_their_token(api_world, as_alice):
    path = f"/conversations/{api_world.conversation.pk}/messages"
    other = Api(tokens.issue_operator_token(name="second", operator=api_world.alice, by=api_world.alice).text)
    key = {"Idempotency-Key": "same-key"}
    assert as_alice.post(path, {"text": "From the first"}, headers=key).status_code == 201
    assert other.post(path, {"text": "From the second"}, headers=key).status_code == 201


def test_a_refused_first_attempt_leaves_the_key_free_for_the_retry(api_world, as_alice):
    path = f"/conversations/{api_world.conversation.pk}/messages"
    key = {"Idempotency-Key": "retry-me"}
    api_world.sms.is_active = False
    api_world.sms.save(update_fields=["is_active"])
    assert as_alice.post(path, {"text": "Later"}, headers=key).status_code == 409
    api_world.sms.is_active = True
    api_world.sms.save(update_fields=["is_active"])
    assert as_alice.post(path, {"text": "Later"}, headers=key).status_code == 201
    assert Message.objects.filter(text="Later").count() == 1


def test_a_malformed_idempotency_key_is_a_400(api_world, as_alice):
    response = as_alice.post(
        f"/conversations/{api_world.conversation.pk}/messages", {"text": "x"}, headers={"Idempotency-Key": "a b"}
    )
    assert response.status_code in {400, 422}
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="concurrent writers: PostgreSQL's row locks")
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_send_once(alice, sms):
    message = receive(sms, "SM-race", "Hello?")
    token = tokens.issue_operator_token(name="race", operator=alice, by=alice).text
    path = f"/conversations/{message.conversation_id}/messages"
    barrier = threading.Barrier(4)
    answers: list[tuple[int, dict]] = []

    def send() -> None:
        barrier.wait()
        response = Api(token).post(path, {"text": "Exactly once"}, headers={"Idempotency-Key": "race-1"})
        answers.append((response.status_code, response.json()))
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [status for status, _ in answers] == [201] * 4
    assert len({body["id"] for _, body in answers}) == 1
    assert Message.objects.filter(text="Exactly once").count() == 1


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_reply_posted_to_the_served_api_is_delivered_by_the_worker(stack, alice, sms):
    simulator.customer_says(medium="sms", address="+15005550006", text="Hi")
    customer_message = wait_for(lambda: Message.objects.filter(direction="in").first())
    token = tokens.issue_operator_token(name="stack", operator=alice, by=alice).text
    response = httpx.post(
        f"{stack.base_url}/api/v1/conversations/{customer_message.conversation_id}/messages",
        json={"text": "Delivered through the API"},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "stack-1"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    wait_for(lambda: Message.objects.get(pk=response.json()["id"]).status == "delivered")
    assert [row["text"] for row in simulator.outbox(to="+15005550006")] == ["Delivered through the API"]
