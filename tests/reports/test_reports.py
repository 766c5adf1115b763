"""The Reports page: which channels customers use, and how the bot and the team serve them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from bot import encoders, knowledge
from bot import services as bot
from bot.encoders import TfidfEncoder
from bot.models import Article, BotDecision, Calibration, ExampleQuestion
from inbox.models import Channel, Conversation, Message
from inbox.services import channels, conversations, outbound
from inbox.services.inbound import receive_message
from inbox.templatetags.inbox_tags import duration
from inbox.transport import InboundMessage
from reports import rollups
from reports import selectors as reports

URL = reverse("reports:index")
_ids = count()


@pytest.fixture
def tfidf_bot(settings, db):
    """The real bot on the TF-IDF encoder with two articles, calibrated to answer clear questions."""
    settings.BOT_ENCODER = "tfidf"
    encoders.reset_encoders()
    knowledge.forget_indexes()
    for title, answer, examples in [
        ("Passwords", "Use 'Forgot password' on the sign-in page.", ["i forgot my password", "reset my password"]),
        ("Delivery", "Parcels arrive in 2-3 working days.", ["where is my parcel", "track my delivery"]),
    ]:
        article = Article.objects.create(title=title, answer=answer)
        ExampleQuestion.objects.bulk_create([ExampleQuestion(article=article, text=t) for t in examples])
    Calibration.objects.create(
        encoder=TfidfEncoder().name, language="*", threshold=0.2, margin=0.0, computed_at=timezone.now()
    )
    yield
    encoders.reset_encoders()
    knowledge.forget_indexes()


@pytest.fixture
def telegram(sales) -> Channel:
    return channels.create_channel(
        kind="simulator", name="Sales Telegram", team=sales, channel_settings={"medium": "telegram"}
    )


def write(channel: Channel, address: str, text: str, *, at: datetime, **extra) -> Message:
    """A customer writes on ``channel`` through the real inbound path; the message is dated ``at``."""
    inbound = InboundMessage(provider_id=f"p{next(_ids)}", address=address, text=text, **extra)
    message = receive_message(channel=channel, inbound=inbound)
    Message.objects.filter(pk=message.pk).update(created_at=at)
    return message


def opened(message: Message, at: datetime) -> Conversation:
    """The message's conversation, dated as opened at ``at``."""
    Conversation.objects.filter(pk=message.conversation_id).update(created_at=at)
    return Conversation.objects.get(pk=message.conversation_id)


def answer(conversation: Conversation, operator, *, at: datetime, channel: Channel | None = None) -> Message:
    """An operator replies through the real outbox; the reply is dated ``at``."""
    conversation = Conversation.objects.get(pk=conversation.pk)
    message = outbound.reply(conversation=conversation, text="On it.", by=operator, channel=channel)
    Message.objects.filter(pk=message.pk).update(created_at=at)
    return message


def resolve(conversation: Conversation, operator, *, at: datetime) -> None:
    conversations.resolve_conversation(conversation=Conversation.objects.get(pk=conversation.pk), by=operator)
    Conversation.objects.filter(pk=conversation.pk).update(resolved_at=at)


@pytest.fixture
def activity(tfidf_bot, sms, whatsapp, telegram, alice, bob):
    """Two days ago, in Support (bot-first SMS, WhatsApp) and Sales (Telegram); twenty days ago, one more.

    - Dora writes on SMS, Alice answers after 4 min; Dora writes again on WhatsApp (the same phone
      number: the same conversation), Alice answers there; resolved 2 h 10 min after Dora's first message.
    - Eve asks the bot on SMS (it answers), then asks for a person (it hands off); Alice answers
      30 min after Eve's first message.
    - Frank writes on WhatsApp; Alice answers after 1 h; still open.
    - Gina writes on Telegram; Bob answers after 10 min; resolved after 40 min.
    - Twenty days ago Hank wrote on SMS, Alice answered after 5 min and resolved it after 1 h.
    """
    Channel.objects.filter(pk=sms.pk).update(bot_enabled=True)
    sms.refresh_from_db()
    t = timezone.now() - timedelta(days=2)

    dora = write(sms, "+15005550001", "Where is my parcel? I need it today.", at=t, name="Dora")
    dora_c = opened(dora, t)
    answer(dora_c, alice, at=t + timedelta(minutes=4))
    write(whatsapp, "+15005550001", "Any news?", at=t + timedelta(hours=1))
    answer(dora_c, alice, at=t + timedelta(hours=1, minutes=5), channel=whatsapp)
    resolve(dora_c, alice, at=t + timedelta(hours=2, minutes=10))

    eve = write(sms, "+15005550002", "i forgot my password", at=t, name="Eve")
    eve_c = opened(eve, t)
    assert bot.run_triage(message_id=eve.pk).action == BotDecision.Action.ANSWER
    person = write(sms, "+15005550002", "can I talk to a human please", at=t + timedelta(minutes=5))
    assert bot.run_triage(message_id=person.pk).action == BotDecision.Action.HANDOFF
    answer(eve_c, alice, at=t + timedelta(minutes=30))

    frank = write(whatsapp, "+15005550003", "Hello?", at=t, name="Frank")
    answer(opened(frank, t), alice, at=t + timedelta(hours=1))

    gina = write(telegram, "424242", "Do you sell gift cards?", at=t, name="Gina")
    gina_c = opened(gina, t)
    answer(gina_c, bob, at=t + timedelta(minutes=10))
    resolve(gina_c, bob, at=t + timedelta(minutes=40))

    old = timezone.now() - timedelta(days=20)
    hank = write(sms, "+15005550009", "Is the shop open on Sunday?", at=old, name="Hank")
    hank_c = opened(hank, old)
    answer(hank_c, alice, at=old + timedelta(minutes=5))
    resolve(hank_c, alice, at=old + timedelta(hours=1))
    # The history above was backdated behind the events' backs: the rollups are rebuilt from it.
    rollups.rebuild()
    return {"sms": sms, "whatsapp": whatsapp, "telegram": telegram}


def report_for(operator, days: int = 7, team_id: int | None = None) -> reports.ChannelReport:
    since, until = reports.period(days)
    return reports.channel_report(operator=operator, since=since, until=until, team_id=team_id)


def rows_by_name(report: reports.ChannelReport) -> dict[str, reports.ChannelRow]:
    return {row.name: row for row in report.rows}


def minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def test_each_channel_shows_its_customers_messages_bot_and_response_times(activity, admin):
    report = report_for(admin)
    rows = rows_by_name(report)

    assert [row.name for row in report.rows] == ["SMS", "WhatsApp", "Sales Telegram"]
    sms, whatsapp, telegram = rows["SMS"], rows["WhatsApp"], rows["Sales Telegram"]

    # Dora and Eve wrote on SMS (Eve twice); the bot answered Eve and told her a person is coming.
    assert (sms.customers, sms.inbound, sms.outbound_people, sms.outbound_bot) == (2, 3, 2, 2)
    assert (sms.bot_answers, sms.bot_questions, sms.bot_handoffs, sms.handoff_share) == (1, 0, 1, 0.5)
    assert sms.started == 2
    assert sms.first_response == reports.Durations(count=2, median=minutes(17), p90=minutes(27.4))
    assert (sms.resolved, sms.resolution.median) == (1, timedelta(hours=2, minutes=10))

    # Dora's WhatsApp message joined the conversation she started on SMS: it counts her, not a start.
    assert (whatsapp.customers, whatsapp.inbound, whatsapp.outbound_people, whatsapp.outbound_bot) == (2, 2, 2, 0)
    assert whatsapp.started == 1
    assert whatsapp.first_response == reports.Durations(count=1, median=minutes(60), p90=minutes(60))
    assert (whatsapp.bot_answers, whatsapp.bot_handoffs, whatsapp.handoff_share) == (0, 0, None)
    assert (whatsapp.resolved, whatsapp.resolution.median) == (0, None)

    assert (telegram.customers, telegram.inbound, telegram.outbound_people, telegram.started) == (1, 1, 1, 1)
    assert telegram.first_response.median == minutes(10)
    assert (telegram.resolved, telegram.resolution.median) == (1, minutes(40))


def test_the_total_counts_each_customer_once_so_shares_can_exceed_a_hundred_percent(activity, admin):
    report = report_for(admin)
    total, rows = report.total, rows_by_name(report)

    assert total.customers == 4  # Dora, Eve, Frank, Gina
    assert [rows[name].customer_share for name in ("SMS", "WhatsApp", "Sales Telegram")] == [0.5, 0.5, 0.25]
    assert sum(row.customer_share for row in report.rows) == 1.25
    assert (total.inbound, total.outbound_people, total.outbound_bot, total.started) == (6, 5, 2, 4)
    assert (total.bot_answers, total.bot_handoffs, total.handoff_share) == (1, 1, 0.5)
    # First responses of 4, 10, 30 and 60 minutes.
    assert total.first_response == reports.Durations(count=4, median=minutes(20), p90=minutes(51))
    assert (total.resolved, total.resolution.median) == (2, timedelta(hours=1, minutes=25))


def test_customers_on_two_channels_and_the_pairs_they_combine(activity, admin, sms, telegram):
    report = report_for(admin)
    assert (report.multichannel, report.multichannel_share) == (1, 0.25)
    assert report.pairs == [reports.MediumPair(media=("sms", "whatsapp"), labels=("SMS", "WhatsApp"), customers=1)]

    # Gina writes on SMS too (a new phone identity of another customer, unless linked): link it.
    gina = Message.objects.get(channel=telegram, sender=Message.Sender.CUSTOMER).customer
    from customers.services import link_identity

    link_identity(customer=gina, kind="phone", value="+15005550004")
    write(sms, "+15005550004", "It's Gina again", at=timezone.now() - timedelta(hours=1))
    rollups.rebuild()

    report = report_for(admin)
    assert (report.multichannel, report.multichannel_share) == (2, 0.5)
    assert [(pair.labels, pair.customers) for pair in report.pairs] == [
        (("SMS", "WhatsApp"), 1),
        (("SMS", "Telegram"), 1),
    ]


def test_the_period_leaves_out_older_activity(activity, admin):
    week, month = rows_by_name(report_for(admin, days=7)), rows_by_name(report_for(admin, days=30))

    assert (week["SMS"].customers, week["SMS"].started, week["SMS"].resolved) == (2, 2, 1)
    # Hank, twenty days ago: in the last 30 days, not in the last 7.
    assert (month["SMS"].customers, month["SMS"].inbound, month["SMS"].started, month["SMS"].resolved) == (3, 4, 3, 2)
    assert month["SMS"].first_response.count == 3


def test_the_period_is_whole_days_in_the_sites_time_zone(settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    now = datetime(2025, 3, 10, 23, 30, tzinfo=UTC)  # already 11 March in Tokyo

    since, until = reports.period(7, now=now)

    assert until == now
    assert since.isoformat() == "2025-03-05T00:00:00+09:00"


def test_operators_see_only_their_teams_channels_and_staff_see_all(activity, admin, alice, bob, sales):
    assert [row.name for row in report_for(bob).rows] == ["Sales Telegram"]
    assert report_for(bob).total.customers == 1
    assert [row.name for row in report_for(alice).rows] == ["SMS", "WhatsApp"]
    assert report_for(alice).total.customers == 3
    assert {row.name for row in report_for(admin).rows} == {"SMS", "WhatsApp", "Sales Telegram"}
    # Staff asking for one team see what its operators see.
    staff_view, bobs_view = report_for(admin, team_id=sales.pk), report_for(bob)
    assert (staff_view.rows, staff_view.total) == (bobs_view.rows, bobs_view.total)


def test_an_automatic_reply_is_not_a_customer_writing(db, admin, sms):
    write(sms, "+15005550005", "I am out of the office until Monday.", at=timezone.now(), auto_reply=True)
    rollups.rebuild()

    report = report_for(admin)

    assert (report.total.customers, report.total.inbound, report.total.started) == (0, 0, 0)


def test_the_page_shows_the_table_with_humanised_durations(client, activity, admin):
    client.force_login(admin)
    page = client.get(URL, {"days": 7})

    assert page.status_code == 200
    html = page.content.decode()
    assert f'<a href="{URL}" aria-current="page">Reports</a>' in html
    assert '<tr class="channel-row"' in html
    assert "17 min" in html  # SMS, median first response
    assert "2 h 10 min" in html  # SMS, median time to resolution
    assert "1 h 25 min" in html  # all channels
    assert "SMS + WhatsApp" in html
    assert "add up to more than 100 %" in html
    assert 'class="num">50 %</td>' in html
    assert page.context["report"].total.customers == 4


def test_every_operator_has_the_reports_link_and_sees_their_teams_numbers(client, activity, bob):
    client.force_login(bob)
    inbox = client.get(reverse("inbox:index"))
    assert f'<a href="{URL}">Reports</a>' in inbox.content.decode()

    page = client.get(URL)
    assert page.status_code == 200
    assert [row.name for row in page.context["report"].rows] == ["Sales Telegram"]
    assert "WhatsApp" not in page.content.decode()


def test_without_activity_the_page_says_so(client, db, alice, sms):
    client.force_login(alice)
    page = client.get(URL)

    assert page.status_code == 200
    assert "Nothing happened on these channels in this period" in page.content.decode()
    assert "<table" not in page.content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_csv_download_is_the_table_with_formulas_neutralised(client, activity, admin, telegram):
    Channel.objects.filter(pk=telegram.pk).update(name='=HYPERLINK("http://evil.test","Sales")')
    client.force_login(admin)

    response = client.get(URL, {"days": 7, "format": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="parley-channels-')
    header, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert header[:5] == ["Channel", "Medium", "Team", "Customers who wrote", "Share of customers who wrote (%)"]
    assert len(header) == 18
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert list(by_name) == ["SMS", "WhatsApp", '\'=HYPERLINK("http://evil.test","Sales")', "All channels"]
    assert by_name["SMS"]["First response, median (s)"] == str(17 * 60)
    assert by_name["SMS"]["Hand-off share of bot decisions (%)"] == "50.0"
    assert by_name["All channels"]["Customers who wrote"] == "4"
    assert by_name["All channels"]["Time to resolution, median (s)"] == str(85 * 60)


@pytest.mark.parametrize("text", ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "plain", ""])
def test_cells_that_a_spreadsheet_would_run_start_with_an_apostrophe(text):
    expected = text if text in ("plain", "") else "'" + text
    assert reports.safe_cell(text) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"days": "5"}, "Choose a period of 7, 30, 90 or 365 days."),
        ({"days": "week"}, "Choose a period of 7, 30, 90 or 365 days."),
        ({"team": "abc"}, "Choose one of your teams, or all of them."),
        ({"team": "999999999999999999999"}, "Choose one of your teams, or all of them."),
        ({"format": "xlsx"}, "The only download is format=csv."),
    ],
)
def test_bad_parameters_get_a_400_with_a_clear_message(client, activity, bob, query, message):
    client.force_login(bob)
    response = client.get(URL, query)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_another_teams_report_is_refused(client, activity, bob, support):
    client.force_login(bob)
    response = client.get(URL, {"team": support.pk})
    assert response.status_code == 400
    assert "Choose one of your teams" in response.content.decode()


def test_empty_parameters_mean_the_last_30_days_of_every_team(client, activity, admin):
    client.force_login(admin)
    response = client.get(URL, {"days": "", "team": "", "format": ""})
    assert response.status_code == 200
    report = response.context["report"]
    assert (report.team_id, report.total.customers) == (None, 5)  # Hank too
    assert report.since == reports.period(30, now=report.until)[0]


def test_the_queries_do_not_grow_with_the_data(
    activity, admin, bob, alice, client, sms, whatsapp, django_assert_max_num_queries
):
    def view_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        return len(queries)

    client.force_login(alice)
    before = view_queries()
    for operator in (admin, bob, alice):
        # Seven, and one more the first time an operator's teams are read.
        with django_assert_max_num_queries(8):
            report_for(operator)

    t = timezone.now() - timedelta(days=1)
    for n in range(10, 30):
        message = write(sms if n % 2 else whatsapp, f"+150055501{n:02d}", "Hello", at=t)
        answer(opened(message, t), alice, at=t + timedelta(minutes=n))
        write(whatsapp, f"+150055501{n:02d}", "Still there?", at=t + timedelta(hours=1))
    rollups.rebuild()

    for operator in (admin, bob, alice):
        with django_assert_max_num_queries(7):
            report_for(operator)
    assert report_for(alice).total.customers == 23
    # One of them counts the labels (desk.selectors.label_counts), one the SLA card (sla_summary),
    # one the satisfaction answers (desk.selectors.csat_summary).
    assert view_queries() == before <= 15


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (45, "45 s"),
        (4 * 60 + 59, "4 min"),
        (2 * 3600 + 10 * 60, "2 h 10 min"),
        (3 * 3600, "3 h"),
        (76 * 3600, "3 d 4 h"),
    ],
)
def test_durations_read_like_people_say_them(seconds, text):
    assert duration(timedelta(seconds=seconds)) == text
    assert duration(None) == "—"


def test_percentiles_interpolate_between_the_closest_ranks():
    values = [minutes(m) for m in (4, 10, 30, 60)]
    assert reports.percentile(values, 0.5) == minutes(20)
    assert reports.percentile(values, 0.9) == minutes(51)
    assert reports.percentile([minutes(7)], 0.9) == minutes(7)
    assert reports.percentile([], 0.5) is None
