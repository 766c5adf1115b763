"""Conversations through the API: the inbox's filters and keyset pages, assignment, status and
priority through the inbox's services, each change in the audit log."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from audit.models import Entry
from inbox.models import Conversation
from inbox.services import conversations
from tests.api.conftest import receive


def make_conversations(sms, count):
    return [
        receive(sms, f"SM-list-{n}", f"hello {n}", address=f"+1500555{1000 + n}").conversation for n in range(count)
    ]


def test_pages_walk_every_conversation_once_newest_first(api_world, as_alice):
    made = make_conversations(api_world.sms, 5)
    seen, cursor = [], None
    while True:
        page = as_alice.get("/conversations", limit=2, **({"cursor": cursor} if cursor else {})).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = [c.pk for c in reversed(made)] + [api_world.conversation.pk]
    assert seen == expected


def test_filters_are_the_inboxs(api_world, as_alice):
    other = make_conversations(api_world.sms, 1)[0]
    conversations.resolve_conversation(conversation=other, by=api_world.alice)
    conversations.assign_conversation(conversation=api_world.conversation, operator=api_world.alice, by=None)
    assert [c["id"] for c in as_alice.get("/conversations", status="resolved").json()["items"]] == [other.pk]
    assert [c["id"] for c in as_alice.get("/conversations", tab="mine").json()["items"]] == [api_world.conversation.pk]
    assert as_alice.get("/conversations", tab="unassigned").json()["items"] == []
    assert as_alice.get("/conversations", team=api_world.sales.pk).json()["items"] == []


def test_a_bad_filter_is_a_422_naming_it(api_world, as_alice):
    response = as_alice.get("/conversations", tab="everything", stauts="open")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert {e["field"] for e in response.json()["errors"]} == {"query.tab"}
    typo = as_alice.get("/conversations", stauts="open")
    assert typo.status_code == 422
    assert {e["field"] for e in typo.json()["errors"]} == {"query.stauts"}


def test_a_mangled_cursor_is_a_422(api_world, as_alice):
    assert as_alice.get("/conversations", cursor="not-a-cursor").status_code == 422


def test_assign_and_unassign(api_world, as_alice):
    path = f"/conversations/{api_world.conversation.pk}/assignment"
    assigned = as_alice.post(path, {"operator_id": api_world.alice.pk})
    assert assigned.status_code == 200
    assert assigned.json()["assignee_id"] == api_world.alice.pk
    assert as_alice.post(path, {"operator_id": None}).json()["assignee_id"] is None
    entries = Entry.objects.filter(target_type="conversation", target_id=str(api_world.conversation.pk))
    assert entries.count() == 2
    assert all(e.details["via"] == "api" for e in entries)


def test_assigning_someone_outside_the_team_is_a_422(api_world, as_alice):
    response = as_alice.post(
        f"/conversations/{api_world.conversation.pk}/assignment", {"operator_id": api_world.bob.pk}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.operator_id"
    assert Conversation.objects.get(pk=api_world.conversation.pk).assignee_id is None


def test_resolve_reopen_and_snooze(api_world, as_alice):
    path = f"/conversations/{api_world.conversation.pk}/status"
    assert as_alice.post(path, {"status": "resolved"}).json()["status"] == "resolved"
    assert as_alice.post(path, {"status": "open"}).json()["status"] == "open"
    until = (timezone.now() + timedelta(hours=3)).isoformat()
    snoozed = as_alice.post(path, {"status": "snoozed", "snoozed_until": until}).json()
    assert snoozed["status"] == "snoozed"
    assert snoozed["snoozed_until"] is not None


def test_snoozing_without_a_time_or_into_the_past_is_refused(api_world, as_alice):
    path = f"/conversations/{api_world.conversation.pk}/status"
    missing = as_alice.post(path, {"status": "snoozed"})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "body.snoozed_until"
    past = as_alice.post(path, {"status": "snoozed", "snoozed_until": "2001-01-01T00:00:00Z"})
    assert past.status_code == 409
    assert Conversation.objects.get(pk=api_world.conversation.pk).status == "open"


def test_reopening_while_another_conversation_is_open_is_a_409(api_world, as_alice):
    conversations.resolve_conversation(conversation=api_world.conversation, by=None)
    # Resolved long ago: the customer's next message opens a new conversation instead of reopening it.
    Conversation.objects.filter(pk=api_world.conversation.pk).update(resolved_at=timezone.now() - timedelta(days=60))
    newer = receive(api_world.sms, "SM-new-one", "A new question").conversation
    assert newer.pk != api_world.conversation.pk
    response = as_alice.post(f"/conversations/{api_world.conversation.pk}/status", {"status": "open"})
    assert response.status_code == 409
    assert response.json()["type"].endswith("/conflict")


def test_priority(api_world, as_alice):
    path = f"/conversations/{api_world.conversation.pk}/priority"
    assert as_alice.post(path, {"priority": 3}).json()["priority"] == 3
    bad = as_alice.post(path, {"priority": 7})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.priority"
