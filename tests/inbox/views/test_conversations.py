from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from inbox.models import Conversation, Message
from inbox.services import conversations, inbound, outbound
from inbox.transport import InboundMessage

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def conversation(sms) -> Conversation:
    message = inbound.receive_message(
        channel=sms,
        inbound=InboundMessage(provider_id="in-1", address="+15005550006", text="My parcel is late", name="Dora"),
    )
    return message.conversation


@pytest.fixture
def as_alice(client: Client, alice) -> Client:
    client.force_login(alice)
    return client


def url(name: str, *args: object) -> str:
    return reverse(f"inbox:{name}", args=args)


def test_the_login_page_is_labelled_and_translated(client, settings):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b'<label for="id_username">' in page.content
    assert b'<label for="id_password">' in page.content
    persian = client.get(reverse("login"), HTTP_COOKIE=f"{settings.LANGUAGE_COOKIE_NAME}=fa")
    assert b'dir="rtl"' in persian.content


def test_parleys_pages_and_the_admin_carry_the_tab_icon(client, admin):
    client.force_login(admin)
    for url in ("/", "/admin/"):
        assert 'rel="icon" href="/static/favicon.svg"' in client.get(url).content.decode(), url


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(url("index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_logging_in_through_the_form_opens_the_inbox(client, alice, conversation):
    from tests.conftest import PASSWORD

    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD}, follow=True)
    assert response.status_code == 200
    assert b"Dora" in response.content
    assert b'ws-connect="/ws/inbox/"' in response.content


def test_the_inbox_lists_the_teams_conversations_with_counts(as_alice, conversation):
    page = as_alice.get(url("index"))
    assert page.status_code == 200
    assert f'id="row-{conversation.pk}"'.encode() in page.content
    assert page.context["counts"] == {"mine": 0, "unassigned": 1, "bot": 0, "all": 1}


def test_an_htmx_list_request_gets_only_the_list(as_alice, conversation):
    response = as_alice.get(url("index") + "?tab=unassigned", HTTP_HX_TARGET="inbox-list", **HTMX)
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert b'id="inbox-list"' in response.content


@pytest.mark.parametrize("query", ["?tab=nope", "?cursor=garbage", "?team=abc", "?status=lost"])
def test_unknown_filters_are_a_bad_request(as_alice, query):
    assert as_alice.get(url("index") + query).status_code == 400


def test_a_thread_shows_the_customer_and_the_reply_box(as_alice, conversation):
    page = as_alice.get(url("conversation", conversation.pk))
    assert page.status_code == 200
    assert b"My parcel is late" in page.content
    assert f'id="composer-{conversation.pk}"'.encode() in page.content
    assert f"/customers/{conversation.customer_id}/".encode() in page.content


def test_an_htmx_thread_request_gets_only_the_thread(as_alice, conversation):
    response = as_alice.get(url("conversation", conversation.pk), HTTP_HX_TARGET="thread-pane", **HTMX)
    assert b"<html" not in response.content
    assert b'id="thread"' in response.content


def test_another_teams_conversation_is_not_found(client, bob, conversation):
    client.force_login(bob)
    assert client.get(url("conversation", conversation.pk)).status_code == 404
    assert client.post(url("resolve", conversation.pk)).status_code == 404
    assert client.post(url("send", conversation.pk), {"text": "hi", "mode": "reply"}).status_code == 404
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN


def test_posts_without_a_csrf_token_are_refused(alice, conversation):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    response = strict.post(url("resolve", conversation.pk))
    assert response.status_code == 403
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN


def test_a_reply_is_queued_on_the_last_channel_and_shown(as_alice, conversation, sms):
    response = as_alice.post(url("send", conversation.pk), {"text": "On its way!", "mode": "reply"}, **HTMX)
    assert response.status_code == 200
    reply = Message.objects.get(direction="out")
    assert (reply.text, reply.channel, reply.status) == ("On its way!", sms, Message.Status.QUEUED)
    assert f'id="msg-{reply.pk}"'.encode() in response.content
    assert b"data-composer" in response.content


def test_a_reply_may_go_out_on_another_channel(as_alice, conversation, whatsapp):
    inbound.receive_message(
        channel=whatsapp, inbound=InboundMessage(provider_id="wa-1", address="+15005550006", text="Also here")
    )
    as_alice.post(url("send", conversation.pk), {"text": "Hi", "mode": "reply", "channel": whatsapp.pk}, **HTMX)
    assert Message.objects.get(direction="out").channel == whatsapp


def test_a_private_note_is_never_sent(as_alice, conversation):
    response = as_alice.post(url("send", conversation.pk), {"text": "Call them tomorrow", "mode": "note"}, **HTMX)
    assert response.status_code == 200
    note = Message.objects.get(kind=Message.Kind.NOTE)
    assert note.status == ""
    assert note.channel is None


def test_an_empty_reply_is_a_bad_request(as_alice, conversation):
    response = as_alice.post(url("send", conversation.pk), {"text": "", "mode": "reply"}, **HTMX)
    assert response.status_code == 400
    assert response["HX-Retarget"] == "#thread-errors"
    assert not Message.objects.filter(direction="out").exists()


def test_a_reply_to_a_customer_who_opted_out_is_refused_with_the_reason(as_alice, conversation, sms):
    conversations.opt_out(channel=sms, customer=conversation.customer)
    page = as_alice.get(url("conversation", conversation.pk))
    assert b"opted out" in page.content
    assert b"data-reply-blocked disabled" in page.content
    response = as_alice.post(url("send", conversation.pk), {"text": "Hello?", "mode": "reply"}, **HTMX)
    assert response.status_code == 422
    assert b"opted out" in response.content
    assert not Message.objects.filter(direction="out").exists()


def test_the_channel_picker_explains_a_refusal(as_alice, conversation, sms):
    conversations.opt_out(channel=sms, customer=conversation.customer)
    response = as_alice.get(url("composer", conversation.pk) + f"?channel={sms.pk}&text=draft", **HTMX)
    assert response.status_code == 200
    assert b"opted out" in response.content
    assert b"draft" in response.content
    assert as_alice.get(url("composer", conversation.pk) + "?channel=999999", **HTMX).status_code == 400


def test_assign_to_me_then_to_a_teammate_then_unassign(as_alice, conversation, alice, support):
    from inbox.models import Operator

    carol = Operator.objects.create_user("carol", "carol@example.test", "x", display_name="Carol")
    carol.teams.add(support)
    response = as_alice.post(url("assign", conversation.pk), {"operator": "me"}, **HTMX)
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.assignee == alice
    as_alice.post(url("assign", conversation.pk), {"operator": carol.pk}, **HTMX)
    conversation.refresh_from_db()
    assert conversation.assignee == carol
    as_alice.post(url("unassign", conversation.pk), **HTMX)
    conversation.refresh_from_db()
    assert conversation.assignee is None
    actions = list(
        Message.objects.filter(kind="activity").order_by("created_at", "pk").values_list("metadata__action", flat=True)
    )
    assert actions == ["assigned", "assigned", "unassigned"]


def test_assigning_to_someone_outside_the_team_is_a_bad_request(as_alice, conversation, bob):
    response = as_alice.post(url("assign", conversation.pk), {"operator": bob.pk}, **HTMX)
    assert response.status_code == 400
    conversation.refresh_from_db()
    assert conversation.assignee is None


def test_resolve_and_reopen_show_as_activity_in_the_thread(as_alice, conversation):
    as_alice.post(url("resolve", conversation.pk), **HTMX)
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.RESOLVED
    as_alice.post(url("reopen", conversation.pk), **HTMX)
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN
    page = as_alice.get(url("conversation", conversation.pk))
    assert b"Alice resolved this conversation" in page.content
    assert b"Alice reopened this conversation" in page.content


def test_snooze_with_a_preset_and_refuse_a_time_in_the_past(as_alice, conversation):
    past = (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert as_alice.post(url("snooze", conversation.pk), {"until": past}, **HTMX).status_code == 400
    assert as_alice.post(url("snooze", conversation.pk), {}, **HTMX).status_code == 400
    response = as_alice.post(url("snooze", conversation.pk), {"preset": "1h"}, **HTMX)
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.SNOOZED
    assert conversation.snoozed_until > timezone.now()


def test_snooze_until_an_exact_time_from_the_date_picker(as_alice, conversation):
    later = (timezone.localtime() + timedelta(days=2)).replace(second=0, microsecond=0)
    response = as_alice.post(url("snooze", conversation.pk), {"until": later.strftime("%Y-%m-%dT%H:%M")}, **HTMX)
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.snoozed_until == later


def test_priority_changes_and_unknown_priorities_are_refused(as_alice, conversation):
    assert as_alice.post(url("priority", conversation.pk), {"priority": "9"}, **HTMX).status_code == 400
    as_alice.post(url("priority", conversation.pk), {"priority": "3"}, **HTMX)
    conversation.refresh_from_db()
    assert conversation.priority == Conversation.Priority.URGENT


def test_reopening_when_another_conversation_is_open_is_a_conflict(as_alice, conversation, alice, sms):
    conversations.resolve_conversation(conversation=conversation, by=alice)
    Conversation.objects.filter(pk=conversation.pk).update(resolved_at=timezone.now() - timedelta(days=365))
    inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="in-2", address="+15005550006", text="New question")
    )
    response = as_alice.post(url("reopen", conversation.pk), **HTMX)
    assert response.status_code == 409
    assert b"already has an open conversation" in response.content


def test_a_failed_message_shows_its_reason_and_can_be_retried_or_resent(as_alice, conversation, alice, sms, whatsapp):
    inbound.receive_message(
        channel=whatsapp, inbound=InboundMessage(provider_id="wa-1", address="+15005550006", text="Also here")
    )
    conversation.refresh_from_db()
    failed = outbound.reply(conversation=conversation, text="Your code is 1234", by=alice)
    assert failed.channel == whatsapp
    Message.objects.filter(pk=failed.pk).update(status=Message.Status.FAILED, status_reason="Unreachable handset")
    page = as_alice.get(url("conversation", conversation.pk))
    assert b"Unreachable handset" in page.content
    assert b"Retry" in page.content
    assert b"Resend on" in page.content

    assert as_alice.post(url("resend", failed.pk), {"channel": "nope"}, **HTMX).status_code == 400
    response = as_alice.post(url("resend", failed.pk), {"channel": sms.pk}, **HTMX)
    assert response.status_code == 200
    assert Message.objects.get(metadata__resent_from=failed.pk).channel == sms

    response = as_alice.post(url("retry", failed.pk), **HTMX)
    assert response.status_code == 200
    failed.refresh_from_db()
    assert failed.status == Message.Status.QUEUED
    assert as_alice.post(url("retry", failed.pk), **HTMX).status_code == 409


def test_older_messages_load_by_cursor(as_alice, conversation, alice):
    for n in range(60):
        outbound.add_note(conversation=conversation, text=f"note {n}", by=alice)
    page = as_alice.get(url("conversation", conversation.pk))
    cursor = page.context["thread"].older_cursor
    assert cursor
    older = as_alice.get(url("older", conversation.pk) + f"?before={cursor}", **HTMX)
    assert older.status_code == 200
    assert b"My parcel is late" in older.content
    assert as_alice.get(url("older", conversation.pk) + "?before=zzz", **HTMX).status_code == 400


def test_the_next_page_of_the_list_comes_by_cursor(as_alice, sms):
    for n in range(30):
        inbound.receive_message(
            channel=sms, inbound=InboundMessage(provider_id=f"n{n}", address=f"+1500555{n:04d}", text=f"n{n}")
        )
    first = as_alice.get(url("index"))
    cursor = first.context["page"].next_cursor
    rest = as_alice.get(url("more") + f"?cursor={cursor}", **HTMX)
    assert rest.status_code == 200
    assert rest.content.count(b'class="row ') == 5


def test_pages_cost_the_same_number_of_queries_however_big_the_inbox(as_alice, alice, sms):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cost(path: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert as_alice.get(path).status_code == 200
        return len(queries)

    def grow(start: int, count: int) -> Conversation:
        for n in range(start, start + count):
            message = inbound.receive_message(
                channel=sms, inbound=InboundMessage(provider_id=f"g{n}", address=f"+1500555{n:04d}", text=f"n{n}")
            )
            conversations.assign_conversation(conversation=message.conversation, operator=alice, by=alice)
            outbound.add_note(conversation=message.conversation, text="seen", by=alice)
        return message.conversation

    first = grow(0, 2)
    small = (cost(url("index")), cost(url("index") + "?tab=mine"), cost(url("conversation", first.pk)))
    last = grow(2, 30)
    for n in range(20):
        outbound.add_note(conversation=last, text=f"more {n}", by=alice)
    big = (cost(url("index")), cost(url("index") + "?tab=mine"), cost(url("conversation", last.pk)))
    assert big == small
