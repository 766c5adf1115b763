"""Automation rules: each event kind, each action, once per event delivery, team scoping, no loops,
the dry run, and the staff page. The rules' engine is called as the worker's task calls it; the
last tests run it through a real Celery worker (the receivers of the domain events enqueue it)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from bot.models import BusinessHours
from desk import rules, tasks
from desk.models import Rule, RuleRun
from inbox.models import Conversation, Message, Operator, SavedReply
from inbox.services import conversations, outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.conftest import PASSWORD, wait_for

When = Rule.When


def make_rule(admin, *, when=When.INBOUND, actions, conditions=None, team=None, position=100, **fields) -> Rule:
    rule = Rule(
        name=fields.pop("name", f"rule {when} {position}"),
        when=when,
        team=team,
        actions=actions,
        conditions=conditions or {},
        position=position,
        **fields,
    )
    return rules.save_rule(rule=rule, by=admin)


def inbound_message(conversation: Conversation) -> Message:
    return Message.objects.filter(conversation=conversation, direction=Message.Direction.INBOUND).latest("pk")


def rule_entries(conversation: Conversation, action: str = "rule_action") -> list[dict]:
    return [
        m.metadata
        for m in Message.objects.filter(conversation=conversation, kind=Message.Kind.ACTIVITY).order_by("pk")
        if m.metadata.get("action") == action
    ]


def deliver(conversation: Conversation, when: str, event_id: str, **extra) -> list[int]:
    return rules.run_event(when=when, event_id=event_id, conversation_id=conversation.pk, **extra)


# -- events ----------------------------------------------------------------------------------------


def test_a_customer_message_whose_text_matches_gets_the_label(conversation, admin, refund):
    rule = make_rule(
        admin, actions=[{"action": "add_label", "label": refund.pk}], conditions={"text_contains": "PARCEL"}
    )
    make_rule(admin, actions=[{"action": "resolve"}], conditions={"text_contains": "invoice"}, position=200)
    message = inbound_message(conversation)

    acted = deliver(conversation, When.INBOUND, f"message.inbound:{message.pk}", message_id=message.pk)

    conversation.refresh_from_db()
    assert acted == [rule.pk]
    assert conversation.labels == ["Refund"]
    assert conversation.status == Conversation.Status.OPEN  # the "invoice" rule did not match
    [entry] = rule_entries(conversation)
    assert entry["rule"] == rule.pk
    assert entry["rule_name"] == rule.name


@pytest.mark.parametrize("when", [When.CREATED, When.ASSIGNED, When.HANDED_OFF, When.RESOLVED])
def test_each_conversation_event_runs_its_rules_only(conversation, admin, when):
    make_rule(admin, when=when, actions=[{"action": "priority", "priority": 3}])
    other = next(w for w in (When.CREATED, When.RESOLVED) if w != when)
    make_rule(admin, when=other, actions=[{"action": "priority", "priority": 0}], position=1)

    deliver(conversation, when, f"{when}:{conversation.pk}:x")

    conversation.refresh_from_db()
    assert conversation.priority == Conversation.Priority.URGENT


def test_no_reply_for_n_minutes_runs_once_per_waiting_spell(conversation, admin, refund):
    make_rule(admin, when=When.NO_REPLY, no_reply_minutes=10, actions=[{"action": "add_label", "label": refund.pk}])
    later = make_rule(admin, when=When.NO_REPLY, no_reply_minutes=60, actions=[{"action": "priority", "priority": 3}])
    Conversation.objects.filter(pk=conversation.pk).update(waiting_since=timezone.now() - timedelta(minutes=5))
    assert tasks.sweep_no_reply() == 0  # not yet

    Conversation.objects.filter(pk=conversation.pk).update(waiting_since=timezone.now() - timedelta(minutes=11))
    assert tasks.sweep_no_reply() == 1
    tasks.sweep_no_reply()  # the scheduler's next minute: already claimed

    conversation.refresh_from_db()
    assert conversation.labels == ["Refund"]
    assert conversation.priority == Conversation.Priority.NORMAL  # the 60-minute rule waits
    assert len(rule_entries(conversation)) == 1
    assert not RuleRun.objects.filter(rule=later).exists()


def test_a_rule_needs_its_minutes_for_no_reply(admin, refund):
    with pytest.raises(rules.ValidationError):
        make_rule(admin, when=When.NO_REPLY, actions=[{"action": "add_label", "label": refund.pk}])


# -- conditions ------------------------------------------------------------------------------------


def test_conditions_channel_team_label_priority_language(
    conversation, admin, refund, bug, sms, whatsapp, support, sales
):
    conversation.customer.language = "ru-RU"
    conversation.customer.save()
    conversation = Conversation.objects.select_related("customer").get(pk=conversation.pk)
    rules.services.add_label(conversation=conversation, label=refund, by=None)
    conversation.refresh_from_db()
    facts = rules.facts_for(conversation)

    def holds(**conditions) -> bool:
        return rules.matches(Rule(when=When.INBOUND, conditions=conditions), facts)

    assert holds(channels=[sms.pk])
    assert not holds(channels=[whatsapp.pk])
    assert holds(teams=[support.pk])
    assert not holds(teams=[sales.pk])
    assert holds(labels=[bug.pk, refund.pk])
    assert not holds(labels=[bug.pk])
    assert holds(priorities=[1, 2])
    assert not holds(priorities=[3])
    assert holds(languages=["ru"])
    assert not holds(languages=["uk", "fa"])
    assert holds(text_contains="my PARCEL")
    assert not holds(text_contains="refund")
    assert holds(channels=[sms.pk], languages=["ru"])
    assert not holds(channels=[sms.pk], languages=["fa"])


def test_business_hours_come_from_the_bots_hours(conversation, admin, support, refund):
    BusinessHours.objects.create(team=support)  # hours with no opening: always closed
    closed = make_rule(
        admin, actions=[{"action": "add_label", "label": refund.pk}], conditions={"hours": "closed"}, position=1
    )
    make_rule(admin, actions=[{"action": "priority", "priority": 3}], conditions={"hours": "open"}, position=2)
    message = inbound_message(conversation)

    assert deliver(conversation, When.INBOUND, f"message.inbound:{message.pk}", message_id=message.pk) == [closed.pk]


# -- actions ---------------------------------------------------------------------------------------


def test_every_action_goes_through_the_services_and_names_the_rule(conversation, admin, alice, sales, refund):
    saved = SavedReply.objects.create(title="Hello", text="Hello {customer_name}, we are on it.")
    rule = make_rule(
        admin,
        actions=[
            {"action": "assign", "operator": alice.pk},
            {"action": "add_label", "label": refund.pk},
            {"action": "priority", "priority": 2},
            {"action": "reply", "saved_reply": saved.pk},
            {"action": "note", "text": "Checked by the rule"},
            {"action": "resolve"},
        ],
    )
    message = inbound_message(conversation)
    deliver(conversation, When.INBOUND, f"message.inbound:{message.pk}", message_id=message.pk)

    conversation.refresh_from_db()
    assert conversation.assignee == alice
    assert conversation.labels == ["Refund"]
    assert conversation.priority == Conversation.Priority.HIGH
    assert conversation.status == Conversation.Status.RESOLVED
    thread = Message.objects.filter(conversation=conversation)
    assert thread.get(direction=Message.Direction.OUTBOUND).text == "Hello Dora, we are on it."
    assert thread.get(kind=Message.Kind.NOTE).text == "Checked by the rule"
    entries = rule_entries(conversation)
    assert len(entries) == 6
    assert {e["rule_name"] for e in entries} == {rule.name}


def test_the_thread_says_which_rule_acted(client, conversation, admin, alice, refund):
    make_rule(admin, name="Refund triage", actions=[{"action": "add_label", "label": refund.pk}])
    deliver(conversation, When.INBOUND, "message.inbound:thread")
    client.force_login(alice)

    page = client.get(reverse("inbox:conversation", args=[conversation.pk])).content.decode()

    assert "The rule Refund triage acted: label Refund" in page


def test_moving_to_a_team_lets_go_of_an_assignee_outside_it(conversation, admin, alice, sales):
    conversations.assign_conversation(conversation=conversation, operator=alice, by=None)
    make_rule(admin, when=When.ASSIGNED, actions=[{"action": "assign_team", "team": sales.pk}])

    deliver(conversation, When.ASSIGNED, "conversation.assigned:1")

    conversation.refresh_from_db()
    assert conversation.team == sales
    assert conversation.assignee is None
    assert rule_entries(conversation, "team_changed")


def test_a_refused_step_undoes_the_rule_and_says_why(conversation, admin, refund, bob):
    rule = make_rule(
        admin,
        actions=[{"action": "add_label", "label": refund.pk}, {"action": "assign", "operator": bob.pk}],
    )
    deliver(conversation, When.INBOUND, "message.inbound:x")

    conversation.refresh_from_db()
    assert conversation.labels == []
    assert conversation.assignee is None
    [failed] = rule_entries(conversation, "rule_failed")
    assert failed["rule"] == rule.pk
    assert "Bob" in failed["reason"]


# -- once, in order, no loops, team scope -------------------------------------------------------------


def test_a_redelivered_event_does_nothing(conversation, admin):
    make_rule(admin, actions=[{"action": "note", "text": "Once"}])
    message = inbound_message(conversation)
    event_id = f"message.inbound:{message.pk}"

    first = deliver(conversation, When.INBOUND, event_id, message_id=message.pk)
    again = deliver(conversation, When.INBOUND, event_id, message_id=message.pk)

    assert len(first) == 1
    assert again == []
    assert Message.objects.filter(conversation=conversation, kind=Message.Kind.NOTE).count() == 1


def test_rules_run_in_order_and_see_what_the_earlier_did(conversation, admin, refund):
    second = make_rule(
        admin, actions=[{"action": "priority", "priority": 3}], conditions={"labels": [refund.pk]}, position=20
    )
    first = make_rule(admin, actions=[{"action": "add_label", "label": refund.pk}], position=10)

    assert deliver(conversation, When.INBOUND, "message.inbound:y") == [first.pk, second.pk]
    assert Conversation.objects.get(pk=conversation.pk).priority == Conversation.Priority.URGENT


def test_past_the_depth_limit_no_rule_runs(conversation, admin):
    make_rule(admin, when=When.ASSIGNED, actions=[{"action": "note", "text": "again"}])

    assert deliver(conversation, When.ASSIGNED, "conversation.assigned:deep", depth=rules.MAX_DEPTH) == []
    assert deliver(conversation, When.ASSIGNED, "conversation.assigned:shallow", depth=rules.MAX_DEPTH - 1)


def test_the_depth_marks_what_rules_do_not_what_people_do():
    assert rules.DEPTH.get() == 0
    with rules.acting(2):
        assert rules.DEPTH.get() == 2
    assert rules.DEPTH.get() == 0


def test_a_teams_rule_leaves_other_teams_conversations_alone(conversation, admin, sales, refund):
    make_rule(admin, team=sales, actions=[{"action": "add_label", "label": refund.pk}])

    assert deliver(conversation, When.INBOUND, "message.inbound:z") == []
    assert Conversation.objects.get(pk=conversation.pk).labels == []


def test_a_teams_rule_may_only_use_its_teams_saved_replies(admin, sales, support):
    theirs = SavedReply.objects.create(title="Sales hello", text="Hi", team=sales)
    with pytest.raises(rules.ValidationError):
        make_rule(admin, team=support, actions=[{"action": "reply", "saved_reply": theirs.pk}])


def test_unknown_conditions_and_actions_are_refused(admin):
    with pytest.raises(rules.ValidationError):
        make_rule(admin, actions=[{"action": "delete_everything"}])
    with pytest.raises(rules.ValidationError):
        make_rule(admin, actions=[{"action": "resolve"}], conditions={"moon_phase": "full"})


# -- dry run and the staff page -----------------------------------------------------------------------


def test_the_dry_run_lists_the_recent_conversations_it_would_match(client, admin, conversation, sms):
    other = receive_message(
        channel=sms, inbound=InboundMessage(provider_id="in-2", address="+15005550007", text="Invoice please")
    ).conversation
    rule = make_rule(admin, actions=[{"action": "resolve"}], conditions={"text_contains": "parcel"})
    client.force_login(admin)

    page = client.get(reverse("desk:rule", args=[rule.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-dry-run="{conversation.pk}" data-matched="yes"' in html
    assert f'data-dry-run="{other.pk}" data-matched="no"' in html
    assert Conversation.objects.get(pk=conversation.pk).status == Conversation.Status.OPEN  # acted on nothing


def test_staff_write_a_rule_on_the_page(client, admin, refund, support):
    client.force_login(admin)
    response = client.post(
        reverse("desk:rules"),
        {
            "name": "Refunds in Russian",
            "team": support.pk,
            "when": When.INBOUND,
            "position": 5,
            "enabled": "on",
            "text_contains": "возврат",
            "languages": "ru, uk",
            "add_labels": [refund.pk],
            "priority": "2",
        },
    )
    assert response.status_code == 302
    rule = Rule.objects.get()
    assert rule.conditions == {"text_contains": "возврат", "languages": ["ru", "uk"]}
    assert rule.actions == [{"action": "add_label", "label": refund.pk}, {"action": "priority", "priority": 2}]
    assert client.get(reverse("desk:rules")).content.decode().count('data-rule="') == 1


def test_a_rule_without_actions_is_a_clear_error(client, admin):
    client.force_login(admin)
    response = client.post(reverse("desk:rules"), {"name": "Nothing", "when": When.INBOUND, "position": 1})
    assert response.status_code == 422
    assert "at least one action" in response.content.decode()
    assert not Rule.objects.exists()


def test_bad_input_is_a_400(client, admin):
    client.force_login(admin)
    response = client.post(reverse("desk:rules"), {"name": "x", "when": "whenever", "position": "soon"})
    assert response.status_code == 400


def test_operators_and_visitors_may_not_touch_rules(client, admin, bob):
    rule = make_rule(admin, actions=[{"action": "resolve"}])
    client.force_login(bob)
    for url in (reverse("desk:rules"), reverse("desk:rule", args=[rule.pk])):
        assert client.get(url).status_code == 403
    assert client.post(reverse("desk:rule_delete", args=[rule.pk])).status_code == 403
    client.logout()
    assert client.get(reverse("desk:rules")).status_code == 302
    assert Rule.objects.filter(pk=rule.pk).exists()


def test_staff_delete_a_rule(client, admin):
    rule = make_rule(admin, actions=[{"action": "resolve"}])
    client.force_login(admin)
    assert client.post(reverse("desk:rule_delete", args=[rule.pk])).status_code == 302
    assert not Rule.objects.exists()
    assert client.get(reverse("desk:rule", args=[rule.pk])).status_code == 404


def test_the_admin_checks_a_rule_as_the_page_does(client, admin, refund):
    client.force_login(admin)
    fields = {"name": "From the admin", "when": When.INBOUND, "position": 1, "conditions": "{}", "enabled": "on"}

    refused = client.post(reverse("admin:desk_rule_add"), {**fields, "actions": '[{"action": "explode"}]'})
    assert refused.status_code == 200
    assert "Unknown rule action." in refused.content.decode()
    assert not Rule.objects.exists()

    ok = client.post(
        reverse("admin:desk_rule_add"), {**fields, "actions": f'[{{"action": "add_label", "label": {refund.pk}}}]'}
    )
    assert ok.status_code == 302
    assert Rule.objects.get().actions == [{"action": "add_label", "label": refund.pk}]


# -- through a real worker ----------------------------------------------------------------------------


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_customer_message_runs_the_rules_in_the_worker_once_and_loops_stop(stack, sms, support, alice, admin):
    label_rule = make_rule(admin, actions=[{"action": "note", "text": "Seen by the rule"}])
    carol = Operator.objects.create_user("carol", "carol@example.test", PASSWORD, display_name="Carol")
    carol.teams.add(support)
    # Two rules that undo each other on every assignment: a loop, were it not for the depth limit.
    make_rule(admin, when=When.ASSIGNED, actions=[{"action": "assign", "operator": alice.pk}], position=1)
    make_rule(admin, when=When.ASSIGNED, actions=[{"action": "assign", "operator": carol.pk}], position=2)

    message = receive_message(
        channel=sms, inbound=InboundMessage(provider_id="w-1", address="+15005550199", text="Hello")
    )
    conversation = message.conversation
    wait_for(lambda: Message.objects.filter(conversation=conversation, kind=Message.Kind.NOTE).exists())
    # The same delivery again (a retried task): nothing more.
    tasks.run_rules.delay(When.INBOUND, f"message.inbound:{message.pk}", conversation.pk, message.pk, 0)

    conversations.assign_conversation(conversation=conversation, operator=carol, by=admin)
    wait_for(lambda: len(rule_entries(conversation)) >= 3)

    def settled() -> bool:
        before = len(rule_entries(conversation))
        import time  # a pause between two looks, only here

        time.sleep(1.5)
        return len(rule_entries(conversation)) == before

    wait_for(settled, timeout=30)
    assign_entries = [e for e in rule_entries(conversation) if e["rule"] != label_rule.pk]
    # Depth 0, 1 and 2 run; each event's two rules act at most once: 2 + 4 + 8 at the very most.
    assert 2 <= len(assign_entries) <= 14
    assert Message.objects.filter(conversation=conversation, kind=Message.Kind.NOTE).count() == 1


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_opened_handed_off_and_resolved_each_reach_their_rules_in_the_worker(stack, sms, alice, admin, refund):
    make_rule(admin, when=When.CREATED, actions=[{"action": "note", "text": "Opened"}])
    make_rule(admin, when=When.HANDED_OFF, actions=[{"action": "priority", "priority": 3}])
    make_rule(admin, when=When.RESOLVED, actions=[{"action": "add_label", "label": refund.pk}])

    conversation = receive_message(
        channel=sms, inbound=InboundMessage(provider_id="w-2", address="+15005550198", text="Hi")
    ).conversation
    wait_for(lambda: Message.objects.filter(conversation=conversation, kind=Message.Kind.NOTE, text="Opened").exists())

    Conversation.objects.filter(pk=conversation.pk).update(handler=Conversation.Handler.BOT)
    outbound.reply(conversation=Conversation.objects.get(pk=conversation.pk), text="I'm here", by=alice)
    wait_for(lambda: Conversation.objects.get(pk=conversation.pk).priority == Conversation.Priority.URGENT)

    conversations.resolve_conversation(conversation=conversation, by=alice)
    wait_for(lambda: Conversation.objects.get(pk=conversation.pk).labels == ["Refund"])
    assert {e["rule_name"] for e in rule_entries(conversation)} == {
        f"rule {w} 100" for w in (When.CREATED, When.HANDED_OFF, When.RESOLVED)
    }
