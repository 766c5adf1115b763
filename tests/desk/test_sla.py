"""SLA policies through the services and pages: which policy applies, the clock moved by the inbox's
own events (a message, a reply, snooze and wake, a label), the breach sweep marking each breach once
and firing the rules, the inbox filter and badges, the thread's clock, the staff page and its
refusals, the reports card. The live alert is in test_sla_live.py; the clock itself in
test_sla_clock.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import Entry
from desk import rules, services, tasks
from desk.models import ConversationSla, Label, Rule, SlaPolicy
from inbox.models import Conversation, Message
from inbox.services import conversations, outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from reports import rollups


@pytest.fixture(autouse=True)
def fresh_policies():
    services.forget_policies()
    yield
    services.forget_policies()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run what the services defer to after commit (the domain events' receivers) as production does."""

    def run(action):
        with django_capture_on_commit_callbacks(execute=True):
            return action()

    return run


def policy(admin, team, **fields) -> SlaPolicy:
    values = {"name": "Standard", "first_response_minutes": 30, "resolution_minutes": 480, **fields}
    return services.save_policy(policy=SlaPolicy(team=team, **values), by=admin)


def write(run_on_commit, channel, text="My parcel is late", provider_id="in-1", address="+15005550006") -> Conversation:
    inbound = InboundMessage(provider_id=provider_id, address=address, text=text, name="Dora")
    return run_on_commit(lambda: receive_message(channel=channel, inbound=inbound)).conversation


def clock_of(conversation: Conversation) -> ConversationSla:
    return ConversationSla.objects.select_related("policy").get(conversation=conversation)


# -- which policy, and the clock ------------------------------------------------------------------------


def test_a_customer_message_starts_the_clock_of_the_first_matching_policy_of_the_team(
    run_on_commit, admin, sms, support, sales
):
    policy(
        admin, support, name="Urgent only", priority=Conversation.Priority.URGENT, first_response_minutes=5, position=1
    )
    standard = policy(admin, support, position=2)
    policy(admin, sales, name="Sales", first_response_minutes=1, position=0)

    conversation = write(run_on_commit, sms)

    clock = clock_of(conversation)
    assert clock.policy == standard
    assert clock.running
    assert timedelta(minutes=29) < clock.first_response_due - clock.clock_at <= timedelta(minutes=30)
    assert clock.next_due == clock.first_response_due


def test_a_team_without_policies_gets_no_clock_and_its_messages_cost_no_query_for_it(
    run_on_commit, sms, django_assert_num_queries
):
    conversation = write(run_on_commit, sms)
    assert not ConversationSla.objects.filter(conversation=conversation).exists()
    services.policies_by_team()  # read once per few seconds per process
    with django_assert_num_queries(0):
        assert services.sync_sla(conversation.pk) is None


def test_a_label_narrows_the_policy_once_it_is_added(run_on_commit, admin, alice, sms, support):
    vip = services.create_label(name="VIP", colour="purple", by=admin)
    policy(admin, support, name="VIP", label=vip, first_response_minutes=5, position=1)
    standard = policy(admin, support, position=2)
    conversation = write(run_on_commit, sms)
    assert clock_of(conversation).policy == standard

    run_on_commit(lambda: services.add_label(conversation=conversation, label=vip, by=alice))

    clock = clock_of(conversation)
    assert clock.policy.name == "VIP"
    assert clock.first_response_due <= clock.clock_at + timedelta(minutes=5)


def test_an_operator_reply_meets_the_first_response_and_updates_the_thread_live(
    run_on_commit, admin, alice, sms, support
):
    policy(admin, support)
    conversation = write(run_on_commit, sms)
    version = Conversation.objects.get(pk=conversation.pk).version

    run_on_commit(lambda: outbound.reply(conversation=conversation, text="On its way", by=alice))

    clock = clock_of(conversation)
    assert clock.first_response_at is not None
    assert clock.first_response_breached_at is None
    assert not clock.running  # the customer has the next word: resolution waits
    assert clock.next_due is None
    # The clock's change bumped the version (the live re-render of the row and the thread).
    assert Conversation.objects.get(pk=conversation.pk).version > version + 1


def test_snoozing_pauses_the_clock_and_the_end_of_the_snooze_resumes_it(run_on_commit, admin, alice, sms, support):
    policy(admin, support)
    conversation = write(run_on_commit, sms)
    until = timezone.now() + timedelta(hours=1)
    run_on_commit(lambda: conversations.snooze_conversation(conversation=conversation, until=until, by=alice))
    paused = clock_of(conversation)
    assert not paused.running
    assert paused.first_response_due is None

    Conversation.objects.filter(pk=conversation.pk).update(snoozed_until=timezone.now() - timedelta(seconds=1))
    run_on_commit(conversations.wake_snoozed)

    resumed = clock_of(conversation)
    assert resumed.running
    assert resumed.first_response_due is not None
    assert resumed.first_response_at is None


def test_resolving_meets_the_resolution_and_reopening_starts_it_again(run_on_commit, admin, alice, sms, support):
    policy(admin, support)
    conversation = write(run_on_commit, sms)
    run_on_commit(lambda: conversations.resolve_conversation(conversation=conversation, by=alice))
    assert clock_of(conversation).resolution_at is not None

    run_on_commit(lambda: conversations.reopen_conversation(conversation=conversation, by=alice))
    clock = clock_of(conversation)
    assert clock.resolution_at is None
    assert not clock.running  # reopened by an operator: the customer is not waiting on us


# -- breaches -------------------------------------------------------------------------------------------


@pytest.fixture
def late(run_on_commit, admin, alice, sms, support) -> Conversation:
    """A conversation of Alice's whose first response was due a minute ago; the admin leads support."""
    admin.teams.add(support)
    policy(admin, support, first_response_minutes=1)
    conversation = write(run_on_commit, sms)
    run_on_commit(lambda: conversations.assign_conversation(conversation=conversation, operator=alice, by=None))
    ConversationSla.objects.filter(conversation=conversation).update(
        first_response_due=timezone.now() - timedelta(minutes=1), next_due=timezone.now() - timedelta(minutes=1)
    )
    return conversation


def test_the_sweep_marks_a_breach_once_with_an_entry_in_the_thread(run_on_commit, late):
    marked = run_on_commit(services.sweep_breaches)
    again = run_on_commit(services.sweep_breaches)

    assert [(pk, target) for pk, target, _event in marked] == [(late.pk, "first_response")]
    assert again == []
    clock = clock_of(late)
    assert clock.first_response_breached_at is not None
    assert clock.breaches == 1
    assert clock.first_response_due is None  # missed: no longer "due"
    assert clock.next_due == clock.resolution_due
    entries = Message.objects.filter(conversation=late, kind=Message.Kind.ACTIVITY, text="sla_breached")
    assert [e.metadata["target"] for e in entries] == ["first_response"]


def test_the_breach_goes_to_the_assignee_and_the_teams_admins(late, alice, admin, bob):
    assert services.breach_recipients(Conversation.objects.get(pk=late.pk)) == [alice.pk, admin.pk]


def test_a_breach_fires_the_sla_rules_once(run_on_commit, late, admin, support):
    rules.save_rule(
        rule=Rule(
            name="Escalate", team=support, when=Rule.When.SLA_BREACHED, actions=[{"action": "priority", "priority": 3}]
        ),
        by=admin,
    )
    assert run_on_commit(tasks.sweep_sla_breaches) == 1
    assert run_on_commit(tasks.sweep_sla_breaches) == 0

    assert Conversation.objects.get(pk=late.pk).priority == Conversation.Priority.URGENT
    acted = Message.objects.filter(conversation=late, kind=Message.Kind.ACTIVITY, text="rule_action")
    assert acted.count() == 1


def test_a_conversation_turning_amber_is_re_rendered_live_once(run_on_commit, admin, sms, support):
    policy(admin, support)
    conversation = write(run_on_commit, sms)
    clock = clock_of(conversation)
    assert services.sweep_warnings() == []  # 24 minutes before amber
    version = Conversation.objects.get(pk=conversation.pk).version

    at = clock.soon_at + timedelta(seconds=1)
    assert run_on_commit(lambda: services.sweep_warnings(now=at)) == [conversation.pk]
    assert services.sweep_warnings(now=at) == []

    assert Conversation.objects.get(pk=conversation.pk).version == version + 1


# -- the inbox and the thread ---------------------------------------------------------------------------


def test_the_inbox_filters_breached_and_due_soon_and_shows_the_badges(run_on_commit, client, late, alice, sms):
    calm = write(run_on_commit, sms, provider_id="in-2", address="+15005550007")
    soon = write(run_on_commit, sms, provider_id="in-3", address="+15005550008")
    now = timezone.now()
    ConversationSla.objects.filter(conversation=soon).update(
        soon_at=now - timedelta(seconds=5), next_due=now + timedelta(seconds=10)
    )
    client.force_login(alice)

    breached = client.get("/?sla=breached").content.decode()
    assert f'id="row-{late.pk}"' in breached
    assert f'id="row-{calm.pk}"' not in breached
    assert "badge sla-badge sla-breached" in breached
    due_soon = client.get("/?sla=soon").content.decode()
    assert f'id="row-{soon.pk}"' in due_soon
    assert f'id="row-{late.pk}"' not in due_soon
    assert f'id="row-{calm.pk}"' not in due_soon
    assert "badge sla-badge sla-soon" in due_soon
    everything = client.get("/").content.decode()
    assert everything.count("sla-badge") == 2  # the calm one has none


@pytest.mark.parametrize("value", ["late", "1", "x" * 300])
def test_a_bad_sla_filter_is_a_bad_request(client, alice, value):
    client.force_login(alice)
    assert client.get("/", {"sla": value}).status_code == 400


def test_the_inbox_list_reads_the_clocks_in_its_one_query(run_on_commit, client, admin, alice, sms, support):
    policy(admin, support)
    for n in range(3):
        write(run_on_commit, sms, provider_id=f"in-{n}", address=f"+1500555000{n}")
    client.force_login(alice)
    client.get("/")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get("/")
    write(run_on_commit, sms, provider_id="in-9", address="+15005550099")
    with CaptureQueriesContext(connection) as more:
        client.get("/")
    assert len(more) == len(few)


def test_the_thread_shows_each_targets_due_time(run_on_commit, client, admin, alice, sms, support):
    policy(admin, support, next_response_minutes=60)
    conversation = write(run_on_commit, sms)
    client.force_login(alice)
    thread = client.get(f"/c/{conversation.pk}/").content.decode()
    section = thread.split(f'id="thread-sla-{conversation.pk}"')[1].split("</section>")[0]
    assert "SLA: Standard" in section
    assert 'data-sla-target="first_response" data-sla-state="running"' in section
    assert "due in 29\xa0minutes" in section or "due in 30\xa0minutes" in section
    assert 'data-sla-target="next_response" data-sla-state="waiting"' in section
    assert 'data-sla-target="resolution" data-sla-state="running"' in section


# -- the staff page -------------------------------------------------------------------------------------


def test_staff_add_a_policy_from_the_page_and_it_is_audited(client, admin, support):
    client.force_login(admin)
    answer = client.post(
        "/desk/sla/",
        {
            "name": "Gold",
            "team": support.pk,
            "first_response_minutes": 15,
            "business_hours": "on",
            "position": 1,
            "enabled": "on",
        },
    )
    assert answer.status_code == 302
    gold = SlaPolicy.objects.get(name="Gold")
    assert (gold.team, gold.first_response_minutes, gold.business_hours) == (support, 15, True)
    assert Entry.objects.filter(action="created", target="Gold").exists()
    assert "Gold" in client.get("/desk/sla/").content.decode()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"name": "No targets", "position": 1}, "Give at least one target."),
        ({"name": "Zero", "first_response_minutes": 0, "position": 1}, "greater than or equal to 1"),
        ({"name": "Forever", "resolution_minutes": 10**9, "position": 1}, "less than or equal to"),
        ({"name": "  ", "first_response_minutes": 5, "position": 1}, "This field is required."),
        ({"name": "Standard", "first_response_minutes": 5, "position": 1}, "already"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(client, admin, support, data, problem):
    policy(admin, support)
    client.force_login(admin)
    answer = client.post("/desk/sla/", {"team": support.pk, **data})
    assert answer.status_code == 400
    assert problem in answer.content.decode()
    assert SlaPolicy.objects.count() == 1


def test_a_label_or_team_that_does_not_exist_is_refused(client, admin, support):
    client.force_login(admin)
    assert (
        client.post("/desk/sla/", {"name": "X", "team": 98765, "first_response_minutes": 5, "position": 1}).status_code
        == 400
    )
    answer = client.post(
        "/desk/sla/", {"name": "X", "team": support.pk, "label": 98765, "first_response_minutes": 5, "position": 1}
    )
    assert answer.status_code == 400
    assert not SlaPolicy.objects.exists()


def test_operators_may_not_manage_policies_and_visitors_must_sign_in(client, admin, alice, bob, support):
    gold = policy(admin, support, name="Gold")
    for operator in (alice, bob):
        client.force_login(operator)
        assert client.get("/desk/sla/").status_code == 403
        assert client.post(f"/desk/sla/{gold.pk}/delete/").status_code == 403
    client.logout()
    assert client.get("/desk/sla/").status_code == 302
    assert client.post(f"/desk/sla/{gold.pk}/delete/").status_code == 302
    assert SlaPolicy.objects.filter(pk=gold.pk).exists()


def test_staff_change_and_delete_a_policy_and_an_unknown_one_is_a_404(client, admin, support):
    gold = policy(admin, support, name="Gold")
    client.force_login(admin)
    assert client.get("/desk/sla/98765/").status_code == 404
    assert client.post("/desk/sla/98765/delete/").status_code == 404
    answer = client.post(
        f"/desk/sla/{gold.pk}/", {"name": "Gold", "team": support.pk, "resolution_minutes": 60, "position": 3}
    )
    assert answer.status_code == 302
    gold.refresh_from_db()
    assert (gold.first_response_minutes, gold.resolution_minutes, gold.enabled) == (None, 60, False)
    assert client.post(f"/desk/sla/{gold.pk}/delete/").status_code == 302
    assert not SlaPolicy.objects.exists()
    assert Entry.objects.filter(action="deleted", target="Gold").exists()


# -- reports --------------------------------------------------------------------------------------------


def test_the_reports_show_the_share_met_per_channel_and_team(
    run_on_commit, client, late, admin, alice, bob, sms, support
):
    write(run_on_commit, sms, provider_id="in-2", address="+15005550007")
    run_on_commit(services.sweep_breaches)
    rollups.rebuild()  # what the worker's refresh writes after the events (the page reads rollups)
    client.force_login(alice)
    page = client.get("/reports/").content.decode()
    card = page.split('id="sla-heading"')[1].split("</section>")[0]
    channels = card.split('data-sla-table="channels"')[1].split("</table>")[0]
    assert f'<th scope="row" dir="auto">{sms.name}</th>' in channels
    assert '<td class="num">2</td><td class="num">1</td><td class="num sla-share">50 %</td>' in channels
    teams = card.split('data-sla-table="teams"')[1].split("</table>")[0]
    assert support.name in teams
    client.force_login(bob)  # another team's operator sees none of it
    assert 'id="sla-heading"' not in client.get("/reports/").content.decode()


def test_deleting_a_label_takes_its_policies_with_it(admin, support):
    vip = services.create_label(name="VIP", colour="purple", by=admin)
    policy(admin, support, label=vip)
    services.delete_label(label=Label.objects.get(pk=vip.pk), by=admin)
    assert not SlaPolicy.objects.exists()


def test_the_inbox_sorts_by_the_nearest_due_time_and_pages_in_that_order(
    run_on_commit, client, admin, alice, sms, support
):
    from inbox.selectors.conversations import inbox_page

    policy(admin, support)
    rows = [write(run_on_commit, sms, provider_id=f"in-{n}", address=f"+1500555001{n}") for n in range(4)]
    now = timezone.now()
    for minutes, conversation in zip((30, 10, 20), rows, strict=False):
        ConversationSla.objects.filter(conversation=conversation).update(next_due=now + timedelta(minutes=minutes))
    ConversationSla.objects.filter(conversation=rows[3]).update(next_due=None, running=False)  # paused: no due time

    order, cursor = [], None
    while True:
        page = inbox_page(operator=alice, order="due", cursor=cursor, limit=1)
        order += [item.pk for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert order == [rows[1].pk, rows[2].pk, rows[0].pk]

    client.force_login(alice)
    listed = client.get("/?sort=due").content.decode()
    positions = [listed.index(f'id="row-{c.pk}"') for c in (rows[1], rows[2], rows[0])]
    assert positions == sorted(positions)
    assert f'id="row-{rows[3].pk}"' not in listed
    assert '<option value="due" selected>SLA due first</option>' in listed
    assert "sort=due" in listed.split('id="inbox-list"')[1].split(">")[0]  # kept by live re-fetches
    assert client.get("/?sort=oldest").status_code == 400
