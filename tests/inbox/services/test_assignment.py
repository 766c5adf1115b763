from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inbox import tasks
from inbox.models import Conversation, Message, Operator
from inbox.services import assignment, conversations, inbound, outbound
from inbox.transport import InboundMessage
from tests.conftest import PASSWORD


def customer_writes(channel, n: int, text: str = "Hello") -> Conversation:
    message = inbound.receive_message(
        channel=channel, inbound=InboundMessage(provider_id=f"m{n}-{text}", address=f"+1500555{n:04d}", text=text)
    )
    return message.conversation


def online(operator: Operator) -> Operator:
    return conversations.set_presence(operator=operator, presence=Operator.Presence.ONLINE)


@pytest.fixture
def carol(support) -> Operator:
    """A second operator of the Support team."""
    operator = Operator.objects.create_user("carol", "carol@example.test", PASSWORD, display_name="Carol")
    operator.teams.add(support)
    return operator


def assignees(*conversations: Conversation) -> list[str | None]:
    return [
        getattr(Conversation.objects.get(pk=c.pk).assignee, "username", None)
        for c in conversations  # fresh from the database
    ]


def test_waiting_conversations_go_to_online_operators_up_to_capacity_and_the_rest_wait(sms, support, alice, carol):
    Operator.objects.filter(pk__in=[alice.pk, carol.pk]).update(capacity=2)
    online(alice)
    online(carol)
    conversations = [customer_writes(sms, n) for n in range(5)]

    assigned = assignment.assign_next(team_id=support.pk)

    assert assigned == [c.pk for c in conversations[:4]]
    assert assignees(*conversations) == ["alice", "carol", "alice", "carol", None]
    activity = Message.objects.filter(conversation=conversations[0], kind=Message.Kind.ACTIVITY).get()
    assert activity.metadata["action"] == "assigned"
    assert activity.author is None


def test_the_waiting_conversation_lands_as_soon_as_capacity_frees(sms, support, alice, carol):
    Operator.objects.filter(pk__in=[alice.pk, carol.pk]).update(capacity=1)
    online(alice)
    online(carol)
    first, second, third = (customer_writes(sms, n) for n in range(3))
    assignment.assign_next(team_id=support.pk)
    assert assignees(first, second, third) == ["alice", "carol", None]

    conversations.resolve_conversation(conversation=second, by=carol)
    assignment.on_capacity_freed(sender=Operator, operator_id=carol.pk)

    assert assignees(third) == ["carol"]


def test_two_operators_five_waiting_one_goes_offline_their_work_is_requeued_after_the_grace_period(
    sms, support, alice, carol
):
    Operator.objects.filter(pk__in=[alice.pk, carol.pk]).update(capacity=3)
    online(alice)
    online(carol)
    opened = [customer_writes(sms, n) for n in range(5)]
    assignment.assign_next(team_id=support.pk)
    assert assignees(*opened) == ["alice", "carol", "alice", "carol", "alice"]

    conversations.set_presence(operator=alice, presence=Operator.Presence.OFFLINE)
    # Within the grace period nothing moves: a dropped connection is not a lost operator.
    assert assignment.requeue_offline(now=timezone.now() + timedelta(minutes=4)) == []
    assert assignees(*opened) == ["alice", "carol", "alice", "carol", "alice"]

    requeued = assignment.requeue_offline(now=timezone.now() + assignment.OFFLINE_GRACE + timedelta(seconds=1))

    assert requeued == [opened[0].pk, opened[2].pk, opened[4].pk]
    # Carol had room for one more: the oldest of alice's goes to her, the others wait for capacity.
    assert assignees(*opened) == ["carol", "carol", None, "carol", None]
    unassigned = Message.objects.filter(conversation=opened[2], metadata__action="unassigned").get()
    assert unassigned.metadata["reason"] == "operator offline"

    conversations.resolve_conversation(conversation=opened[1], by=carol)
    assignment.on_capacity_freed(sender=Operator, operator_id=carol.pk)
    assert assignees(opened[2], opened[4]) == ["carol", None]


def test_the_oldest_waiting_conversation_is_assigned_first(sms, support, alice):
    Operator.objects.filter(pk=alice.pk).update(capacity=1)
    earlier = customer_writes(sms, 1)
    later = customer_writes(sms, 2)
    # The operator answered the earlier one and handed it back; the customer's next message makes it wait anew.
    outbound.reply(conversation=earlier, text="Looking into it", by=alice)
    conversations.unassign_conversation(conversation=earlier, by=alice)
    customer_writes(sms, 1, text="Any news?")
    online(alice)

    assert assignment.assign_next(team_id=support.pk) == [later.pk]


def test_equally_loaded_operators_take_turns(sms, support, alice, carol):
    online(alice)
    online(carol)
    turns = []
    for n in range(4):
        conversation = customer_writes(sms, n)
        assignment.assign_next(team_id=support.pk)
        conversation.refresh_from_db()
        turns.append(conversation.assignee.username)
        # Each is finished at once, so both operators are always equally (un)loaded.
        conversations.resolve_conversation(conversation=conversation, by=conversation.assignee)

    assert turns == ["alice", "carol", "alice", "carol"]


def test_offline_away_and_full_operators_are_never_assigned(sms, support, alice, carol):
    conversations.set_presence(operator=carol, presence=Operator.Presence.AWAY)
    Operator.objects.filter(pk=alice.pk).update(capacity=0)
    online(alice)
    conversation = customer_writes(sms, 1)

    assert assignment.assign_next(team_id=support.pk) == []
    assert assignees(conversation) == [None]


def test_another_teams_operators_never_get_the_conversation(sms, support, bob):
    online(bob)
    conversation = customer_writes(sms, 1)

    assert assignment.route_all() == []
    assert assignees(conversation) == [None]


def test_bot_handled_and_resolved_conversations_are_not_routed(sms, support, alice):
    bot_owned = customer_writes(sms, 1)
    Conversation.objects.filter(pk=bot_owned.pk).update(handler=Conversation.Handler.BOT)
    resolved = customer_writes(sms, 2)
    conversations.resolve_conversation(conversation=resolved, by=alice)
    online(alice)

    assert assignment.assign_next(team_id=support.pk) == []


def test_a_queued_conversation_is_routed_after_commit(sms, support, alice, django_capture_on_commit_callbacks):
    online(alice)
    with django_capture_on_commit_callbacks(execute=True):
        conversation = customer_writes(sms, 1)

    assert assignees(conversation) == ["alice"]


def test_an_operator_going_online_gets_the_waiting_work_after_commit(
    sms, support, alice, django_capture_on_commit_callbacks
):
    conversation = customer_writes(sms, 1)
    assert assignees(conversation) == [None]

    with django_capture_on_commit_callbacks(execute=True):
        online(alice)

    assert assignees(conversation) == ["alice"]


@pytest.mark.django_db(transaction=True)
def test_workers_routing_a_team_at_once_never_overfill_an_operator_or_assign_twice(support, sms, alice, carol):
    # Commits fire the hooks here: with no capacity yet, the conversations wait until the race.
    Operator.objects.filter(pk__in=[alice.pk, carol.pk]).update(capacity=0)
    online(alice)
    online(carol)
    for n in range(6):
        customer_writes(sms, n)
    Operator.objects.filter(pk__in=[alice.pk, carol.pk]).update(capacity=2)
    start = threading.Barrier(4)
    results: list[list[int]] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(assignment.assign_next(team_id=support.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assigned = [pk for result in results for pk in result]
    assert len(results) == 4
    assert len(assigned) == len(set(assigned)) == 4
    assert Conversation.objects.filter(assignee=alice).count() == 2
    assert Conversation.objects.filter(assignee=carol).count() == 2
    assert Message.objects.filter(metadata__action="assigned").count() == 4


def test_a_customer_waiting_for_an_answer_goes_before_a_thread_where_the_team_spoke_last(sms, support, alice):
    Operator.objects.filter(pk=alice.pk).update(capacity=1)
    answered = customer_writes(sms, 1)
    outbound.reply(conversation=answered, text="Done, anything else?", by=alice)
    conversations.unassign_conversation(conversation=answered, by=alice)
    waiting = customer_writes(sms, 2)
    online(alice)

    assert assignment.assign_next(team_id=support.pk) == [waiting.pk]


def test_the_scheduled_sweep_routes_work_the_hooks_missed(sms, support, alice):
    conversation = customer_writes(sms, 1)
    online(alice)  # no commit in this test, so no hook ran: only the sweep can route it

    tasks.route_waiting()

    assert assignees(conversation) == ["alice"]


def after_commit_queries(channel, n: int, capture) -> list[str]:
    """A new customer's message; the SQL its after-commit hooks run (routing, bot, hours, receivers, broadcast)."""
    with capture() as callbacks:
        inbound.receive_message(
            channel=channel, inbound=InboundMessage(provider_id=f"cost{n}", address=f"+1500666{n:04d}", text="Hi")
        )
    with CaptureQueriesContext(connection) as queries:
        for callback in callbacks:
            callback()
    return [query["sql"] for query in queries.captured_queries]


@pytest.mark.parametrize("who", ["nobody online", "everyone online is full"])
def test_a_message_nobody_can_take_costs_the_hooks_one_routing_query_and_no_lock(
    sms, support, alice, who, django_capture_on_commit_callbacks
):
    if who == "everyone online is full":
        Operator.objects.filter(pk=alice.pk).update(capacity=1)
        online(alice)
        customer_writes(sms, 1)
        assignment.assign_next(team_id=support.pk)
    after_commit_queries(sms, 1, django_capture_on_commit_callbacks)  # warms this process's hours cache

    sql = after_commit_queries(sms, 2, django_capture_on_commit_callbacks)

    # The free-seat gate, then the broadcast's one read: no bot, hours, opt-keyword or email queries.
    # Besides, the reports mark what to recompute (reports/receivers.py): one upsert per event (the
    # conversation opened; the message, its customer and its conversation in one statement).
    marks = [statement for statement in sql if "reports_pendingrefresh" in statement]
    rest = [statement for statement in sql if statement not in marks]
    assert len(rest) == 2, "\n".join(sql)
    assert "inbox_operator" in rest[0]
    assert len(marks) <= 2, "\n".join(marks)
    assert not any("FOR UPDATE" in statement or "SAVEPOINT" in statement for statement in sql)


def test_the_gate_lets_routing_through_once_someone_has_room(sms, support, alice, django_capture_on_commit_callbacks):
    waiting = customer_writes(sms, 1)
    assert assignment.has_free_seat(support.pk) is False
    online(alice)
    assert assignment.has_free_seat(support.pk) is True
    assert assignment.assign_next(team_id=support.pk) == [waiting.pk]
