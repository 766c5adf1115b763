"""The report rollups: kept by the worker from the core's events, equal to a rebuild from the source rows."""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, timedelta
from itertools import count

import pytest
from django.urls import reverse
from django.utils import timezone

from inbox import signals
from inbox.models import Channel, Conversation, Message
from inbox.services import channels, conversations, outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from reports import charts, rollups, tasks
from reports import selectors as reports
from reports.models import ActivityCount, ConversationFact, CustomerActivity, DailyChannelStats, PendingRefresh

URL = reverse("reports:index")
_ids = count()


@pytest.fixture
def telegram(sales) -> Channel:
    return channels.create_channel(
        kind="simulator", name="Sales Telegram", team=sales, channel_settings={"medium": "telegram"}
    )


def snapshot() -> dict[str, list]:
    """Every rollup row, without ids: what a rebuild must reproduce."""
    return {
        "daily": sorted(
            DailyChannelStats.objects.values_list("day", "team_id", "channel_id", *rollups.DAILY_FIELDS).order_by()
        ),
        "facts": sorted(ConversationFact.objects.values_list().order_by()),
        "activity": sorted(
            (customer, team, sorted(days.items()))
            for customer, team, days in CustomerActivity.objects.values_list("customer_id", "team_id", "last_days")
        ),
        "counts": sorted(
            ActivityCount.objects.filter(customers__gt=0).values_list("team_id", "key", "day", "customers")
        ),
    }


def write(channel: Channel, address: str, text: str = "Hello") -> Message:
    inbound = InboundMessage(provider_id=f"r{next(_ids)}", address=address, text=text)
    return receive_message(channel=channel, inbound=inbound)


def refresh() -> int:
    """What the worker does when the scheduled task runs."""
    return tasks.refresh_rollups()


def test_rollups_kept_from_events_equal_a_rebuild_after_a_random_mix(
    db, django_capture_on_commit_callbacks, sms, whatsapp, telegram, alice, bob
):
    rng = random.Random(20)
    phones = [f"+1500555{n:04d}" for n in range(8)]
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(40):
            step = rng.choice(["write", "write", "reply", "resolve"])
            if step == "write":
                channel = rng.choice([sms, whatsapp, telegram])
                write(channel, rng.choice(phones) if channel.medium != "telegram" else str(rng.randint(1, 4)))
                continue
            open_ones = list(Conversation.objects.exclude(status=Conversation.Status.RESOLVED))
            if not open_ones:
                continue
            conversation = rng.choice(open_ones)
            who = alice if conversation.team_id == alice.teams.get().pk else bob
            if step == "reply":
                outbound.reply(conversation=conversation, text="On it.", by=who)
            else:
                conversations.resolve_conversation(conversation=conversation, by=who)
    assert PendingRefresh.objects.exists()  # the events marked what they touched

    refresh()

    assert not PendingRefresh.objects.exists()
    kept = snapshot()
    assert kept["daily"]
    assert kept["facts"]
    assert kept["counts"]
    assert sum(row[3] for row in kept["daily"]) == Message.objects.filter(rollups.CUSTOMER_WROTE).count()
    DailyChannelStats.objects.all().delete()
    ConversationFact.objects.all().delete()
    CustomerActivity.objects.all().delete()
    ActivityCount.objects.all().delete()
    rollups.rebuild()
    assert snapshot() == kept


def test_a_redelivered_event_counts_once(db, django_capture_on_commit_callbacks, sms, alice):
    with django_capture_on_commit_callbacks(execute=True):
        message = write(sms, "+15005550100")
    refresh()
    before = snapshot()
    assert DailyChannelStats.objects.get().inbound == 1

    for _ in range(2):  # the same event again, as a broker may deliver it
        signals.message_created.send(
            sender=signals.message_created,
            event="message.created",
            message_id=message.pk,
            conversation_id=message.conversation_id,
            customer_id=message.customer_id,
            kind="inbound",
        )
        refresh()

    assert snapshot() == before
    assert DailyChannelStats.objects.get().inbound == 1
    assert ActivityCount.objects.get(team_id=sms.team_id, key=f"c:{sms.pk}").customers == 1


def test_a_reopened_conversation_leaves_the_resolved_figures(db, django_capture_on_commit_callbacks, sms, alice):
    with django_capture_on_commit_callbacks(execute=True):
        message = write(sms, "+15005550101")
        conversation = Conversation.objects.get(pk=message.conversation_id)
        conversations.resolve_conversation(conversation=conversation, by=alice)
    refresh()
    assert DailyChannelStats.objects.get().resolved == 1

    with django_capture_on_commit_callbacks(execute=True):
        write(sms, "+15005550101", "Actually, one more thing")  # the customer writes again: reopened
    refresh()

    assert DailyChannelStats.objects.get().resolved == 0


def test_rebuild_twice_writes_the_same_rows(db, sms, whatsapp, alice):
    for n in range(5):
        message = write(sms if n % 2 else whatsapp, f"+1500555020{n}")
        outbound.reply(conversation=Conversation.objects.get(pk=message.conversation_id), text="Hi", by=alice)
    rollups.rebuild()
    first = snapshot()
    rollups.rebuild(since=timezone.localdate() - timedelta(days=3))
    rollups.rebuild()
    assert snapshot() == first
    assert ActivityCount.objects.get(team_id=-1, key="all").customers == 5


def test_days_are_the_sites_days(settings, db, sms):
    settings.TIME_ZONE = "Asia/Tokyo"
    late = write(sms, "+15005550300")
    early = write(sms, "+15005550301")
    # 23:30 on 1 March and 00:30 on 2 March in Tokyo: one UTC day, two of the site's days.
    Message.objects.filter(pk=late.pk).update(created_at=datetime(2025, 3, 1, 14, 30, tzinfo=UTC))
    Message.objects.filter(pk=early.pk).update(created_at=datetime(2025, 3, 1, 15, 30, tzinfo=UTC))

    rollups.rebuild(since=date(2025, 2, 28))

    days = dict(DailyChannelStats.objects.filter(inbound__gt=0).values_list("day", "inbound"))
    assert days == {date(2025, 3, 1): 1, date(2025, 3, 2): 1}


def test_past_customers_fall_out_of_the_period_by_their_last_day(db, admin, sms, whatsapp):
    old = write(sms, "+15005550400")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    write(whatsapp, "+15005550401")
    rollups.rebuild()

    def customers(days: int) -> int:
        since, until = reports.period(days)
        return reports.channel_report(operator=admin, since=since, until=until).total.customers

    assert (customers(30), customers(90)) == (1, 2)


def test_many_conversations_give_approximate_medians_from_the_histograms(settings, client, db, admin, sms, alice):
    for n in range(4):
        message = write(sms, f"+1500555050{n}")
        reply = outbound.reply(conversation=Conversation.objects.get(pk=message.conversation_id), text="Hi", by=alice)
        Message.objects.filter(pk=reply.pk).update(created_at=message.created_at + timedelta(minutes=10 * (n + 1)))
    rollups.rebuild()
    exact = reports.channel_report(operator=admin, since=reports.period(7)[0], until=timezone.now())
    assert exact.total.first_response == reports.Durations(
        count=4, median=timedelta(minutes=25), p90=timedelta(minutes=37)
    )

    settings.REPORTS_EXACT_PERCENTILES = 3
    approximate = reports.channel_report(operator=admin, since=reports.period(7)[0], until=timezone.now())

    durations = approximate.total.first_response
    assert (durations.count, durations.approximate) == (4, True)
    # 10 and 20 min fall in the 15-30 min bucket... the median in it, the 90th in 30-60 min.
    assert timedelta(minutes=15) <= durations.median <= timedelta(minutes=30)
    assert timedelta(minutes=30) <= durations.p90 <= timedelta(minutes=60)
    client.force_login(admin)
    assert "≈ " in client.get(URL, {"days": 7}).content.decode()


def test_percentiles_from_buckets_spread_each_bucket_evenly():
    buckets = [0] * len(reports.BUCKET_EDGES)
    buckets[1] = 2  # two durations between 1 and 5 minutes
    assert reports.bucket_percentile(buckets, 0.5) == timedelta(minutes=3)
    assert reports.bucket_percentile([0] * len(buckets), 0.5) is None


def test_the_page_draws_a_bar_per_channel_and_day_with_a_title_and_the_table_beside(
    client, db, django_capture_on_commit_callbacks, admin, sms, whatsapp, alice
):
    with django_capture_on_commit_callbacks(execute=True):
        write(sms, "+15005550600")
        write(whatsapp, "+15005550601")
        write(whatsapp, "+15005550602")
    refresh()
    client.force_login(admin)

    html = client.get(URL, {"days": 7}).content.decode()

    volume = html[html.index('id="chart-volume"') : html.index("</figure>", html.index('id="chart-volume"'))]
    assert '<title id="chart-volume-title">Customer messages per day, by channel</title>' in volume
    assert '<desc id="chart-volume-desc">3 customer messages over 7 days' in volume
    bars = re.findall(r'<rect class="chart-bar series-(\d)"[^>]*><title>([^<]*)</title>', volume)
    assert len(bars) == 2  # today: one SMS bar, one WhatsApp bar stacked on it
    assert {title.split(": ")[-1] for _, title in bars} == {"1 customer messages", "2 customer messages"}
    assert len({series for series, _ in bars}) == 2
    assert 'viewBox="0 0 640 220"' in volume
    assert "style=" not in volume
    for chart_id in ("chart-first-response", "chart-resolution", "chart-bot"):
        assert f'id="{chart_id}"' in html
    assert '<tr class="channel-row"' in html  # the table stays


def test_right_to_left_puts_the_first_day_on_the_right(db, admin, sms):
    write(sms, "+15005550700")
    rollups.rebuild()
    since, until = reports.period(7)
    report = reports.channel_report(operator=admin, since=since, until=until)

    ltr, rtl = charts.volume(report), charts.volume(report, rtl=True)

    # Today is the last day: at the right end left-to-right, at the left end right-to-left.
    assert ltr.bars[0].x > charts.WIDTH / 2 > rtl.bars[0].x
    assert ltr.bars[0].x + rtl.bars[0].x + rtl.bars[0].width == pytest.approx(charts.WIDTH - charts.RIGHT + charts.LEFT)


def test_another_teams_figures_never_reach_an_operator(
    client, db, django_capture_on_commit_callbacks, bob, sms, telegram
):
    with django_capture_on_commit_callbacks(execute=True):
        write(sms, "+15005550800")
        write(sms, "+15005550801")
        write(telegram, "77")
    refresh()
    client.force_login(bob)

    page = client.get(URL, {"days": 7})

    report = page.context["report"]
    assert [row.name for row in report.rows] == ["Sales Telegram"]
    assert (report.total.customers, report.total.inbound) == (1, 1)
    html = page.content.decode()
    assert "SMS" not in html
    assert "1 customer message over 7 days" in html


def test_anonymous_visitors_see_no_charts(client, db):
    response = client.get(URL, {"days": 365})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_rebuild_command_refuses_a_bad_date(db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--since takes a date like"):
        call_command("reports", "rebuild", "--since", "yesterday")


def test_a_busy_day_is_recomputed_at_most_once_an_interval_and_the_rest_waits_its_turn(
    db, django_capture_on_commit_callbacks, sms, settings
):
    from django.core.cache import cache
    from django.db.models import Sum

    settings.REPORTS_DAY_REFRESH_SECONDS = 30
    today = rollups.local_day(timezone.now())
    throttle = f"reports:day-refreshed:{today.isoformat()}"
    cache.delete(throttle)

    def customers_wrote_today() -> int:
        return DailyChannelStats.objects.filter(day=today, channel=sms).aggregate(n=Sum("inbound"))["n"] or 0

    with django_capture_on_commit_callbacks(execute=True):
        write(sms, "+15005550301")
    refresh()
    assert customers_wrote_today() == 1  # a quiet day: at once

    with django_capture_on_commit_callbacks(execute=True):
        second = write(sms, "+15005550302")
    refresh()
    assert customers_wrote_today() == 1  # recomputed seconds ago: the day waits its turn
    assert ConversationFact.objects.filter(conversation_id=second.conversation_id).exists()  # not the rest
    waiting = PendingRefresh.objects.get(kind="day", key=today.isoformat())
    assert waiting.marked_at > timezone.now() + timedelta(seconds=20)  # due when the interval ends
    assert refresh() == 0  # and no refresh takes it before then

    cache.delete(throttle)  # the interval ends
    PendingRefresh.objects.filter(pk=waiting.pk).update(marked_at=timezone.now() - timedelta(seconds=1))
    refresh()
    assert customers_wrote_today() == 2
    assert not PendingRefresh.objects.exists()
