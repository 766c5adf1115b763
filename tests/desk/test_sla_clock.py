"""SLA clocks without the database (desk/sla.py): business time across nights, weekends, holidays
and daylight-saving changes in the team's zone; pauses while snoozed, while the customer has the
next word or the bot answers; reopen; breaches that stay breached; a changed policy."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.hours import Schedule
from desk import sla
from desk.models import ConversationSla, SlaPolicy

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def office(zone: ZoneInfo = BERLIN, *, holidays: tuple[date, ...] = (), days: range = range(5)) -> Schedule:
    """Monday to Friday (by default), 09:00-17:00 local time."""
    return Schedule(zone=zone, intervals=tuple((d, time(9), time(17)) for d in days), holidays=frozenset(holidays))


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)


# -- business time ------------------------------------------------------------------------------------


def test_an_hour_asked_half_an_hour_before_closing_is_due_half_an_hour_after_opening_next_morning():
    due = sla.add_business(local(BERLIN, 2026, 12, 7, 16, 30), 3600, office())  # a Monday
    assert due == local(BERLIN, 2026, 12, 8, 9, 30)


def test_friday_evening_counts_on_monday_morning():
    due = sla.add_business(local(BERLIN, 2026, 12, 11, 16, 30), 3600, office())  # a Friday
    assert due == local(BERLIN, 2026, 12, 14, 9, 30)


def test_a_message_at_night_starts_counting_at_opening():
    due = sla.add_business(local(BERLIN, 2026, 12, 8, 3, 0), 15 * 60, office())
    assert due == local(BERLIN, 2026, 12, 8, 9, 15)


def test_holidays_are_skipped():
    hours = office(holidays=(date(2026, 12, 24), date(2026, 12, 25)))
    due = sla.add_business(local(BERLIN, 2026, 12, 23, 16, 0), 2 * 3600, hours)  # a Wednesday
    assert due == local(BERLIN, 2026, 12, 28, 10, 0)  # Thursday and Friday off: Monday
    assert sla.business_seconds(local(BERLIN, 2026, 12, 23, 16, 0), due, hours) == 2 * 3600


def test_the_opening_hour_moves_in_utc_across_the_spring_change_not_on_the_wall():
    # Berlin goes from UTC+1 to UTC+2 on Sunday 29 March 2026: Monday opens at 07:00 UTC, Friday at 08:00.
    due = sla.add_business(local(BERLIN, 2026, 3, 27, 16, 30), 3600, office())
    assert due == local(BERLIN, 2026, 3, 30, 9, 30)
    assert due.astimezone(UTC) == datetime(2026, 3, 30, 7, 30, tzinfo=UTC)


def test_a_night_shift_over_the_change_is_an_hour_shorter_in_spring_and_longer_in_autumn():
    nights = Schedule(zone=BERLIN, intervals=((6, time(0), time(6)),), holidays=frozenset())  # Sundays 00-06
    spring_start, spring_end = local(BERLIN, 2026, 3, 29, 0, 0), local(BERLIN, 2026, 3, 29, 6, 0)
    assert sla.business_seconds(spring_start - timedelta(hours=1), spring_end + timedelta(hours=1), nights) == 5 * 3600
    autumn_start, autumn_end = local(BERLIN, 2026, 10, 25, 0, 0), local(BERLIN, 2026, 10, 25, 6, 0)
    assert sla.business_seconds(autumn_start, autumn_end, nights) == 7 * 3600
    # Five business hours from Sunday midnight in spring end at the close: 06:00 local, 04:00 UTC.
    assert sla.add_business(spring_start, 5 * 3600, nights) == datetime(2026, 3, 29, 4, 0, tzinfo=UTC)


def test_new_york_counts_in_its_own_zone_across_its_own_change():
    # New York moves to UTC-4 on Sunday 8 March 2026, three weeks before Europe.
    due = sla.add_business(local(NEW_YORK, 2026, 3, 6, 16, 0), 2 * 3600, office(NEW_YORK))
    assert due.astimezone(UTC) == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # Monday 10:00 EDT


def test_without_business_hours_the_clock_is_the_wall_clock():
    start = local(BERLIN, 2026, 12, 12, 23, 0)  # a Saturday night
    assert sla.add_business(start, 3600, None) == start + timedelta(hours=1)
    assert sla.business_seconds(start, start + timedelta(hours=5), None) == 5 * 3600


def test_a_team_that_never_opens_has_no_due_time():
    assert sla.add_business(local(BERLIN, 2026, 12, 7, 10), 60, office(days=range(0))) is None


# -- the clock ----------------------------------------------------------------------------------------

T0 = local(BERLIN, 2026, 12, 7, 10, 0)  # Monday 10:00, the team is open until 17:00


def policy(**minutes: int | None) -> SlaPolicy:
    defaults = {"first_response_minutes": 60, "next_response_minutes": 30, "resolution_minutes": 240}
    return SlaPolicy(name="Standard", **{**defaults, **minutes})


def state(*, waiting: datetime | None, status: str = "open", human: bool = True) -> sla.State:
    return sla.State(open=status == "open", resolved=status == "resolved", human=human, waiting_since=waiting)


def move(row: ConversationSla, at: datetime, st: sla.State, rules: SlaPolicy, hours: Schedule | None = None) -> None:
    sla.advance(row, state=st, policy=rules, now=at, schedule=hours or office())


def test_the_customer_writes_and_every_target_starts_counting():
    row, rules = ConversationSla(), policy()
    move(row, T0, state(waiting=T0), rules)
    assert row.running
    assert row.first_response_due == T0 + timedelta(hours=1)
    assert row.resolution_due == T0 + timedelta(hours=4)
    assert row.next_response_due is None  # no answer yet, so no "next" one
    assert row.next_due == row.first_response_due
    assert row.soon_at == T0 + timedelta(minutes=48)  # 20 % of the hour before it is due


def test_a_reply_meets_the_first_response_and_pauses_resolution_while_the_customer_has_the_next_word():
    row, rules = ConversationSla(), policy()
    move(row, T0, state(waiting=T0), rules)
    move(row, T0 + timedelta(minutes=20), state(waiting=None), rules)
    assert row.first_response_at == T0 + timedelta(minutes=20)
    assert not row.running
    assert row.next_due is None
    assert row.resolution_due is None
    assert row.resolution_spent == 20 * 60
    # The customer answers two hours later: a next-response spell starts; resolution goes on.
    back = T0 + timedelta(hours=2, minutes=20)
    move(row, back, state(waiting=back), rules)
    assert row.next_response_started_at == back
    assert row.next_response_due == back + timedelta(minutes=30)
    assert row.resolution_due == back + timedelta(hours=3, minutes=40)
    assert row.paused_seconds == 2 * 3600


def test_snoozing_pauses_every_target_and_waking_resumes_with_the_time_left():
    row, rules = ConversationSla(), policy()
    move(row, T0, state(waiting=T0), rules)
    move(row, T0 + timedelta(minutes=10), state(waiting=T0, status="snoozed"), rules)
    assert not row.running
    assert row.first_response_due is None
    assert row.next_due is None
    woke = T0 + timedelta(hours=3)
    move(row, woke, state(waiting=T0), rules)
    assert row.first_response_due == woke + timedelta(minutes=50)
    assert row.first_response_at is None


def test_a_pause_that_ends_after_closing_time_continues_next_morning():
    row, rules = ConversationSla(), policy(first_response_minutes=120)
    move(row, T0, state(waiting=T0), rules)
    move(row, T0 + timedelta(hours=1), state(waiting=T0, status="snoozed"), rules)
    woke = local(BERLIN, 2026, 12, 7, 20, 0)  # after 17:00
    move(row, woke, state(waiting=T0), rules)
    assert row.first_response_due == local(BERLIN, 2026, 12, 8, 10, 0)


def test_the_clock_does_not_run_while_the_bot_answers():
    row, rules = ConversationSla(), policy()
    move(row, T0, state(waiting=T0, human=False), rules)
    assert not row.running
    assert row.next_due is None
    handed = T0 + timedelta(minutes=45)
    move(row, handed, state(waiting=T0), rules)
    assert row.first_response_due == handed + timedelta(hours=1)


def test_resolving_then_reopening_goes_on_with_the_resolution_time_left():
    row, rules = ConversationSla(), policy()
    move(row, T0, state(waiting=T0), rules)
    move(row, T0 + timedelta(minutes=30), state(waiting=None, status="resolved"), rules)
    assert row.resolution_at == T0 + timedelta(minutes=30)
    assert row.first_response_at == row.resolution_at
    reopened = T0 + timedelta(hours=1)
    move(row, reopened, state(waiting=reopened), rules)
    assert row.resolution_at is None  # met no more: it goes on
    assert row.resolution_due == reopened + timedelta(hours=3, minutes=30)
    assert row.next_response_due == reopened + timedelta(minutes=30)


def test_a_missed_target_stays_missed_after_a_late_answer_and_a_new_spell_starts_fresh():
    row, rules = ConversationSla(), policy()
    move(row, T0, state(waiting=T0), rules)
    row.first_response_breached_at = T0 + timedelta(hours=1)  # the sweep marked it
    assert sla.level(row, now=T0 + timedelta(hours=1, minutes=5)) == "breached"
    move(row, T0 + timedelta(hours=2), state(waiting=None), rules)
    assert row.first_response_at is not None
    assert row.first_response_breached_at is not None
    assert sla.level(row, now=T0 + timedelta(hours=2)) == ""  # answered: nothing is late now
    later = T0 + timedelta(hours=3)
    move(row, later, state(waiting=later), rules)
    assert row.next_response_due == later + timedelta(minutes=30)


def test_amber_within_the_warning_and_red_once_past_due():
    row, rules = ConversationSla(), policy()
    move(row, T0, state(waiting=T0), rules)
    assert sla.level(row, now=T0 + timedelta(minutes=47)) == ""
    assert sla.level(row, now=T0 + timedelta(minutes=49)) == "soon"
    assert sla.level(row, now=T0 + timedelta(minutes=61)) == "breached"


def test_a_stricter_policy_takes_over_with_the_time_already_spent():
    row = ConversationSla()
    move(row, T0, state(waiting=T0), policy())
    at = T0 + timedelta(minutes=10)
    move(row, at, state(waiting=T0), policy(first_response_minutes=15))
    assert row.first_response_due == at + timedelta(minutes=5)


def test_a_target_the_policy_does_not_set_never_runs():
    row = ConversationSla()
    move(row, T0, state(waiting=T0), policy(first_response_minutes=None, resolution_minutes=None))
    assert row.next_due is None
    assert row.first_response_due is None
