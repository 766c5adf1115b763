from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from bot import hours
from bot.models import BusinessHours, Holiday, OpeningInterval
from inbox.models import Message, Team
from inbox.services import channels, inbound
from inbox.transport import InboundMessage

WEEKDAYS = range(5)


def keep_hours(team: Team, zone: str, *intervals: tuple[int, time, time], holidays: tuple[date, ...] = ()) -> Team:
    team.timezone = zone
    team.save(update_fields=["timezone"])
    business = BusinessHours.objects.create(team=team)
    for weekday, opens, closes in intervals:
        OpeningInterval.objects.create(hours=business, weekday=weekday, opens=opens, closes=closes)
    for day in holidays:
        Holiday.objects.create(hours=business, date=day)
    return team


def office(team: Team, zone: str, holidays: tuple[date, ...] = ()) -> Team:
    """Monday to Friday, 09:00-17:00 local time."""
    return keep_hours(team, zone, *((d, time(9), time(17)) for d in WEEKDAYS), holidays=holidays)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_team_without_business_hours_is_always_open(support):
    assert hours.is_open(support, utc(2026, 3, 29, 3, 0))
    assert hours.next_opening(support, utc(2026, 3, 29, 3, 0)) == utc(2026, 3, 29, 3, 0)


def test_opening_hours_are_local_wall_clock_times_across_a_dst_change(support):
    berlin = office(support, "Europe/Berlin")
    # Before the change (CET, +1) 15:30 UTC is 16:30 in Berlin: open.
    assert hours.is_open(berlin, utc(2026, 3, 27, 15, 30))
    # The clocks went forward on Sunday 29 March: the same 15:30 UTC is 17:30 CEST, closed.
    assert not hours.is_open(berlin, utc(2026, 3, 30, 15, 30))
    # And 07:30 UTC, closed the week before (08:30 CET), is 09:30 CEST, open.
    assert not hours.is_open(berlin, utc(2026, 3, 27, 7, 30))
    assert hours.is_open(berlin, utc(2026, 3, 30, 7, 30))


def test_next_opening_after_the_weekend_of_a_dst_change_is_nine_local(support):
    berlin = office(support, "Europe/Berlin")

    back = hours.next_opening(berlin, utc(2026, 3, 27, 17, 0))  # Friday 18:00 CET

    assert back == utc(2026, 3, 30, 7, 0)  # Monday 09:00 CEST, not 08:00 UTC
    assert back.strftime("%A %H:%M %Z") == "Monday 09:00 CEST"


def test_teams_in_different_time_zones_open_at_different_instants(support, sales):
    berlin = office(support, "Europe/Berlin")
    tokyo = office(sales, "Asia/Tokyo")
    monday_1am_utc = utc(2026, 6, 1, 1, 0)

    assert hours.is_open(tokyo, monday_1am_utc)  # 10:00 in Tokyo
    assert not hours.is_open(berlin, monday_1am_utc)  # 03:00 in Berlin
    assert hours.next_opening(berlin, monday_1am_utc) == utc(2026, 6, 1, 7, 0)


def test_a_holiday_closes_the_day_and_next_opening_skips_it(support):
    new_york = office(support, "America/New_York", holidays=(date(2026, 12, 25),))

    assert not hours.is_open(new_york, utc(2026, 12, 25, 15, 0))  # Friday 10:00 EST, Christmas
    assert hours.is_open(new_york, utc(2026, 12, 24, 15, 0))
    assert hours.next_opening(new_york, utc(2026, 12, 24, 23, 0)) == utc(2026, 12, 28, 14, 0)


def test_an_interval_may_run_past_midnight(support):
    late = keep_hours(support, "UTC", (4, time(22), time(2)))  # Friday 22:00 to Saturday 02:00

    assert hours.is_open(late, utc(2026, 6, 6, 1, 0))  # Saturday 01:00
    assert not hours.is_open(late, utc(2026, 6, 6, 2, 0))
    assert hours.next_opening(late, utc(2026, 6, 6, 2, 0)) == utc(2026, 6, 12, 22, 0)


def test_hours_without_any_opening_never_open(support):
    closed = keep_hours(support, "UTC")

    assert not hours.is_open(closed, utc(2026, 6, 1, 12, 0))
    assert hours.next_opening(closed, utc(2026, 6, 1, 12, 0)) is None


def customer_writes(channel, provider_id: str) -> Message:
    return inbound.receive_message(
        channel=channel, inbound=InboundMessage(provider_id=provider_id, address="+15005550006", text="Hello?")
    )


def after_hours_notices(conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation, metadata__has_key=hours.AFTER_HOURS))


def test_outside_hours_the_customer_is_told_once_when_people_are_back(sms, support):
    office(support, "Europe/Berlin")
    conversation = customer_writes(sms, "a").conversation
    saturday = utc(2026, 3, 28, 12, 0)

    notice = hours.tell_when_back(conversation=conversation, at=saturday)
    again = hours.tell_when_back(conversation=conversation, at=saturday)

    assert notice is not None
    assert notice.sender == Message.Sender.SYSTEM
    assert notice.status == Message.Status.QUEUED
    assert "Monday 30 March, 09:00 (CEST)" in notice.text
    assert again is None
    assert after_hours_notices(conversation) == [notice]


def test_within_hours_nothing_is_said(sms, support):
    office(support, "Europe/Berlin")
    conversation = customer_writes(sms, "a").conversation

    assert hours.tell_when_back(conversation=conversation, at=utc(2026, 3, 30, 10, 0)) is None


def test_the_teams_own_closed_message_is_used(sms, support):
    office(support, "UTC")
    BusinessHours.objects.filter(team=support).update(closed_message="Back on Monday!")
    conversation = customer_writes(sms, "a").conversation

    notice = hours.tell_when_back(conversation=conversation, at=utc(2026, 6, 6, 12, 0))

    assert notice.text == "Back on Monday!"


@pytest.mark.parametrize("zone", ["Nowhere/Atlantis", ""])
def test_an_unknown_time_zone_is_read_as_utc(support, zone):
    team = office(support, zone)

    assert hours.is_open(team, utc(2026, 6, 1, 9, 30))


def test_a_new_conversation_queued_while_closed_is_told_after_commit(sms, support, django_capture_on_commit_callbacks):
    keep_hours(support, "UTC")  # no opening at all: closed whenever the test runs

    with django_capture_on_commit_callbacks(execute=True):
        conversation = customer_writes(sms, "a").conversation

    [notice] = after_hours_notices(conversation)
    assert "in our queue" in notice.text
    assert conversation.assignee is None


def test_a_bot_hand_off_while_closed_says_when_people_are_back_instead_of_a_colleague_is_coming(support):
    from bot import services as bot

    keep_hours(support, "UTC")
    bot_sms = channels.create_channel(
        kind="simulator", name="Bot SMS", team=support, channel_settings={"medium": "sms"}, bot_enabled=True
    )
    message = customer_writes(bot_sms, "a")
    Message.objects.filter(pk=message.pk).update(text="I want to talk to a person")

    decision = bot.run_triage(message_id=message.pk)

    assert decision.action == "handoff"
    [said] = message.conversation.messages.filter(sender=Message.Sender.BOT)
    assert "in our queue" in said.text
    # The queue's own notice sees the bot already told the customer.
    assert hours.tell_when_back(conversation=message.conversation) is None


def test_an_opening_time_skipped_or_repeated_by_the_clock_change_opens_once_at_a_defined_instant(support):
    # Sundays from 02:30: on 29 March 02:30 never happens in Berlin (read as 03:30 CEST); on 25 October it
    # happens twice (the first one counts).
    early = keep_hours(support, "Europe/Berlin", (6, time(2, 30), time(5)))

    assert hours.next_opening(early, utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 30)
    repeated = hours.next_opening(early, utc(2026, 10, 24, 12, 0))
    # (An ambiguous local time never compares equal across zones: compare it in UTC.)
    assert repeated.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    assert repeated.strftime("%H:%M %Z") == "02:30 CEST"
    assert hours.is_open(early, utc(2026, 10, 25, 3, 59))  # 04:59 CET, still before 05:00
    assert not hours.is_open(early, utc(2026, 10, 25, 4, 0))


def test_the_cached_schedule_is_read_without_queries_and_dropped_when_the_hours_change(
    support, django_assert_num_queries, django_capture_on_commit_callbacks
):
    assert hours.cached_schedule(support.pk) is None  # no hours: open around the clock
    with django_assert_num_queries(0):
        assert hours.cached_schedule(support.pk) is None

    with django_capture_on_commit_callbacks(execute=True):
        office(support, "Europe/Paris")
    schedule = hours.cached_schedule(support.pk)
    assert schedule is not None
    assert len(schedule.intervals) == 5
    with django_assert_num_queries(0):
        assert hours.cached_schedule(support.pk) is schedule

    # An interval, a holiday, the time zone: each change is seen at once.
    OpeningInterval.objects.create(hours=support.business_hours, weekday=5, opens=time(10), closes=time(12))
    assert len(hours.cached_schedule(support.pk).intervals) == 6
    Holiday.objects.create(hours=support.business_hours, date=date(2026, 12, 25))
    assert hours.cached_schedule(support.pk).holidays == {date(2026, 12, 25)}
    support.timezone = "America/New_York"
    support.save(update_fields=["timezone"])
    assert str(hours.cached_schedule(support.pk).zone) == "America/New_York"
    BusinessHours.objects.filter(team=support).delete()
    assert hours.cached_schedule(support.pk) is None


def test_another_process_sees_the_change_through_the_shared_version(support):
    from django.core.cache import cache

    office(support, "UTC")
    assert {closes for _, _, closes in hours.cached_schedule(support.pk).intervals} == {time(17)}
    OpeningInterval.objects.update(closes=time(18))  # no model signal: this process keeps its copy
    assert {closes for _, _, closes in hours.cached_schedule(support.pk).intervals} == {time(17)}

    cache.set(f"bot:hours-version:{support.pk}", "bumped-by-another-process", timeout=None)

    assert {closes for _, _, closes in hours.cached_schedule(support.pk).intervals} == {time(18)}


def test_a_customer_writing_while_the_team_is_open_costs_the_hours_no_query(sms, support, django_assert_num_queries):
    hours.cached_schedule(support.pk)
    with django_assert_num_queries(0):
        hours.on_conversation_queued(sender=None, conversation_id=0, team_id=support.pk)
