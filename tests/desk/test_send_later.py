"""Send later: a reply waits as "scheduled" in the outbox, can be edited or cancelled until its time,
is released once by the scheduler, and is cancelled when the customer writes first (a setting)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from customers.services import local_timezone
from inbox.models import Conversation, Message
from inbox.services import conversations, outbound
from inbox.services.conversations import ReplyRefused
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.conftest import PASSWORD


def login(client: Client, who) -> Client:
    client.login(username=who.username, password=PASSWORD)
    return client


def later(minutes: int = 30):
    return timezone.now() + timedelta(minutes=minutes)


@pytest.fixture
def scheduled(conversation: Conversation, alice) -> Message:
    return outbound.reply(conversation=conversation, text="Your parcel left today.", by=alice, send_at=later())


def test_a_scheduled_reply_waits_in_the_outbox_without_touching_the_conversation(conversation, scheduled):
    assert scheduled.status == Message.Status.SCHEDULED
    assert scheduled.send_at is not None
    conversation.refresh_from_db()
    assert conversation.last_message_preview == "My parcel is late"
    assert conversation.waiting_since is not None  # still waiting for an answer
    assert outbound.release_scheduled() == []  # not due yet
    scheduled.refresh_from_db()
    assert scheduled.status == Message.Status.SCHEDULED


def test_the_scheduler_releases_a_due_reply_once_and_it_is_delivered(conversation, scheduled):
    due = scheduled.send_at + timedelta(seconds=1)
    assert outbound.release_scheduled(now=due) == [scheduled.pk]
    assert outbound.release_scheduled(now=due) == []  # claimed: a second run (or scheduler) finds nothing
    scheduled.refresh_from_db()
    assert scheduled.status == Message.Status.QUEUED
    conversation.refresh_from_db()
    assert conversation.last_message_preview == "Your parcel left today."
    assert conversation.waiting_since is None
    outcome = outbound.deliver_message(message_id=scheduled.pk)
    assert outcome.status == Message.Status.SENT
    scheduled.refresh_from_db()
    assert scheduled.status == Message.Status.SENT
    assert scheduled.provider_id


def test_a_reply_that_can_no_longer_reach_the_customer_fails_with_the_reason(conversation, scheduled, sms):
    conversations.opt_out(channel=sms, customer=conversation.customer)
    outbound.release_scheduled(now=scheduled.send_at + timedelta(seconds=1))
    scheduled.refresh_from_db()
    assert scheduled.status == Message.Status.FAILED
    assert scheduled.status_reason


@pytest.mark.parametrize("minutes", [-5, 0, 60 * 24 * 400])
def test_a_time_in_the_past_or_too_far_away_is_refused(conversation, alice, minutes):
    with pytest.raises(ReplyRefused):
        outbound.reply(conversation=conversation, text="Hi", by=alice, send_at=later(minutes))
    assert not Message.objects.filter(status=Message.Status.SCHEDULED).exists()


def test_edit_and_cancel_until_it_leaves(conversation, scheduled, alice):
    edited = outbound.edit_scheduled(message=scheduled, text="Shipped today!", send_at=later(90), by=alice)
    assert (edited.text, edited.status) == ("Shipped today!", Message.Status.SCHEDULED)
    assert edited.send_at > later(80)
    assert outbound.cancel_scheduled(message=edited, by=alice) is True
    edited.refresh_from_db()
    assert edited.status == Message.Status.CANCELLED
    with pytest.raises(ReplyRefused):
        outbound.edit_scheduled(message=edited, text="Again", send_at=later(), by=alice)
    assert outbound.release_scheduled(now=later(200)) == []


def customer_writes(sms, provider_id: str = "in-2", auto_reply: bool = False) -> None:
    receive_message(
        channel=sms,
        inbound=InboundMessage(
            provider_id=provider_id, address="+15005550006", text="Any news?", auto_reply=auto_reply
        ),
    )


def test_the_customer_writing_first_cancels_it_when_it_is_due(sms, client, alice, conversation, scheduled):
    customer_writes(sms)
    login(client, alice)
    assert "The customer wrote since" in client.get(f"/c/{conversation.pk}/").content.decode()
    assert outbound.release_scheduled(now=scheduled.send_at + timedelta(seconds=1)) == []
    scheduled.refresh_from_db()
    assert scheduled.status == Message.Status.CANCELLED
    assert scheduled.status_reason == "The customer wrote before it was sent."


def test_editing_after_the_customer_wrote_confirms_it(sms, alice, conversation, scheduled):
    customer_writes(sms)
    edited = outbound.edit_scheduled(message=scheduled, text="Still: it left today.", send_at=later(5), by=alice)
    assert outbound.release_scheduled(now=edited.send_at + timedelta(seconds=1)) == [scheduled.pk]


def test_the_setting_keeps_it_when_the_customer_writes(sms, conversation, scheduled, settings):
    settings.PARLEY_CANCEL_SCHEDULED_ON_REPLY = False
    customer_writes(sms)
    assert outbound.release_scheduled(now=scheduled.send_at + timedelta(seconds=1)) == [scheduled.pk]


def test_an_out_of_office_reply_cancels_nothing(sms, conversation, scheduled):
    customer_writes(sms, "oof", auto_reply=True)
    assert outbound.release_scheduled(now=scheduled.send_at + timedelta(seconds=1)) == [scheduled.pk]


# -- through the browser's forms ---------------------------------------------------------------------


def test_the_reply_box_schedules_and_the_thread_shows_both_times(client, alice, sms, settings):
    settings.TIME_ZONE = "UTC"
    conversation = receive_message(
        channel=sms, inbound=InboundMessage(provider_id="fr-1", address="+33612345678", text="Bonjour", name="Léa")
    ).conversation
    login(client, alice)
    when = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    answer = client.post(
        f"/c/{conversation.pk}/send/",
        {"text": "Good morning!", "mode": "reply", "send_at": when.strftime("%Y-%m-%dT%H:%M")},
        HTTP_HX_REQUEST="true",
    )
    assert answer.status_code == 200, answer.content.decode()
    message = Message.objects.get(direction="out")
    assert (message.status, message.send_at) == (Message.Status.SCHEDULED, when)
    thread = client.get(f"/c/{conversation.pk}/").content.decode()
    assert "data-scheduled-at" in thread
    # A French mobile number: one time zone, so the customer's local time is shown too.
    assert "(Europe/Paris) for the customer" in thread
    assert "time zone: Europe/Paris" in thread


def test_a_note_cannot_be_scheduled(client, alice, conversation):
    login(client, alice)
    answer = client.post(
        f"/c/{conversation.pk}/send/",
        {"text": "Remember", "mode": "note", "send_at": later().strftime("%Y-%m-%dT%H:%M")},
        HTTP_HX_REQUEST="true",
    )
    assert answer.status_code == 400
    assert not Message.objects.filter(kind="note").exists()


def test_edit_and_cancel_from_the_thread(client, alice, scheduled):
    login(client, alice)
    new_time = (timezone.now() + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    answer = client.post(
        f"/m/{scheduled.pk}/scheduled/", {"text": "Changed", "send_at": new_time}, HTTP_HX_REQUEST="true"
    )
    assert answer.status_code == 200
    scheduled.refresh_from_db()
    assert scheduled.text == "Changed"
    assert client.post(f"/m/{scheduled.pk}/cancel/", HTTP_HX_REQUEST="true").status_code == 200
    scheduled.refresh_from_db()
    assert scheduled.status == Message.Status.CANCELLED
    assert client.post(f"/m/{scheduled.pk}/cancel/", HTTP_HX_REQUEST="true").status_code == 409


def test_another_team_cannot_touch_a_scheduled_reply(client, bob, scheduled):
    login(client, bob)
    assert client.post(f"/m/{scheduled.pk}/cancel/").status_code == 404
    assert client.post(f"/m/{scheduled.pk}/scheduled/", {"text": "x", "send_at": "2030-01-01T10:00"}).status_code == 404
    scheduled.refresh_from_db()
    assert scheduled.status == Message.Status.SCHEDULED


@pytest.mark.django_db
def test_the_customers_time_zone_comes_from_what_they_gave_or_a_one_zone_number():
    from customers.services import resolve_customer

    paris, _ = resolve_customer(kind="phone", value="+33612345678")
    assert local_timezone(paris) == "Europe/Paris"
    given, _ = resolve_customer(kind="email", value="kim@example.test")
    given.attributes = {"timezone": "Asia/Seoul"}
    assert local_timezone(given) == "Asia/Seoul"
    unknown, _ = resolve_customer(kind="webchat", value="v-1")
    assert local_timezone(unknown) == ""


def test_reports_count_a_scheduled_reply_only_once_it_has_left(alice, conversation, scheduled):
    from reports import rollups
    from reports import selectors as reports

    since, until = reports.period(1)
    rollups.rebuild()  # what the worker's refresh writes after the events (reports read rollups)
    report = reports.channel_report(operator=alice, since=since, until=until + timedelta(hours=2))
    assert report.total.outbound_people == 0
    # Its time has come, and it leaves now: released at the real time, it is today's whatever the
    # hour (released at its send_at, a reply scheduled at 23:45 left tomorrow, past the rebuild).
    Message.objects.filter(pk=scheduled.pk).update(send_at=timezone.now() - timedelta(seconds=1))
    outbound.release_scheduled()
    rollups.rebuild()
    report = reports.channel_report(operator=alice, since=since, until=until + timedelta(hours=2))
    assert report.total.outbound_people == 1


def test_the_website_chat_shows_a_scheduled_reply_only_once_it_has_left(support, alice):
    from connectors.webchat.selectors import visitor_messages
    from inbox.services import channels

    site = channels.create_channel(
        kind="webchat", name="Website chat", team=support, channel_settings={"allowed_origins": "https://shop.test"}
    )
    conversation = receive_message(
        channel=site, inbound=InboundMessage(provider_id="w-1", address="visitor-7", text="Hello?")
    ).conversation
    scheduled = outbound.reply(conversation=conversation, text="Back at nine.", by=alice, send_at=later())
    assert [m.text for m in visitor_messages(channel=site, visitor="visitor-7")] == ["Hello?"]
    outbound.release_scheduled(now=scheduled.send_at + timedelta(seconds=1))
    assert [m.text for m in visitor_messages(channel=site, visitor="visitor-7")] == ["Hello?", "Back at nine."]
