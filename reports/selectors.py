"""Reads for the Reports page: which channels customers really use, and how the bot and the team serve them.

Read-only, and from the rollups only (:mod:`reports.models`, kept by :mod:`reports.rollups`): a
period costs its days, not its messages. :func:`channel_report` answers one row per channel and a
total row for a period, seen by one operator: staff see every channel and conversation (or one
team's, when they ask), other operators their teams' channels and, within them, their teams'
conversations only (the same rule as the inbox). Six queries whatever the size of the data.

The definitions, as the page explains them:

- a *customer message* is an inbound message from the customer (a call counts; an automatic reply,
  such as an out-of-office, does not);
- *customers who wrote* on a channel: distinct customers with a customer message on it in the
  period; their share is of every customer who wrote in the period, so the shares add up to more
  than 100 % when customers use several channels. A period always ends now, so these come from
  each customer's last day per channel (:class:`reports.models.ActivityCount`). An operator of
  several teams sees the sum of their teams' counts: a customer who wrote to two of them counts twice;
- *outbound by people* and *by the bot*: outbound messages (and calls) of operators and of the bot;
- *conversations started*: conversations created in the period, counted on the channel of their
  first customer message (a conversation an operator opened by calling, with no customer message,
  is not counted);
- *bot*: its decisions on the channel's customer messages of the period — answers, "did you mean"
  questions, hand-offs — and the hand-offs' share of those three (staying silent is not counted);
- *first response*: for conversations started in the period, from the first customer message to
  the first message an operator wrote to the customer at or after it (time with the bot included);
  conversations no person has answered yet are left out;
- *resolved*: conversations resolved in the period (and not reopened since), on the channel of
  their first customer message; time to resolution runs from that message to the resolution.

Medians and 90th percentiles are exact (from one row per conversation) while the period holds at
most ``settings.REPORTS_EXACT_PERCENTILES`` of them; beyond, they are read from the daily histograms (fixed buckets,
interpolated inside the bucket) and marked approximate.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from common.cells import safe_cell as safe_cell
from inbox.models import Channel, Operator
from reports.models import (
    ALL_TEAMS,
    BUCKET_EDGES,
    FIRST_RESPONSE_BUCKETS,
    RESOLUTION_BUCKETS,
    ActivityCount,
    ConversationFact,
    DailyChannelStats,
)
from reports.rollups import DAILY_COUNTS, local_day

PERIODS = (7, 30, 90, 365)
DEFAULT_PERIOD = 30
TOP_PAIRS = 5


@dataclass(frozen=True)
class Durations:
    """How long something took over ``count`` conversations; None when there were none."""

    count: int
    median: timedelta | None
    p90: timedelta | None
    approximate: bool = False

    @classmethod
    def of(cls, values: list[timedelta]) -> Durations:
        ordered = sorted(values)
        return cls(count=len(ordered), median=percentile(ordered, 0.5), p90=percentile(ordered, 0.9))

    @classmethod
    def from_buckets(cls, buckets: list[int]) -> Durations:
        count = sum(buckets)
        return cls(
            count=count,
            median=bucket_percentile(buckets, 0.5),
            p90=bucket_percentile(buckets, 0.9),
            approximate=bool(count),
        )


@dataclass(frozen=True)
class ChannelRow:
    """One channel's numbers for the period (or the total: ``channel_id`` None)."""

    channel_id: int | None
    name: str
    medium: str
    medium_label: str
    team: str
    customers: int
    customer_share: float | None  # of every customer who wrote in the period, 0..1
    inbound: int
    outbound_people: int
    outbound_bot: int
    started: int
    bot_answers: int
    bot_questions: int
    bot_handoffs: int
    first_response: Durations
    resolved: int
    resolution: Durations

    @property
    def bot_decisions(self) -> int:
        return self.bot_answers + self.bot_questions + self.bot_handoffs

    @property
    def handoff_share(self) -> float | None:
        return self.bot_handoffs / self.bot_decisions if self.bot_decisions else None

    @property
    def has_data(self) -> bool:
        return bool(self.customers or self.outbound_people or self.outbound_bot or self.started or self.resolved)


@dataclass(frozen=True)
class MediumPair:
    """Customers who wrote on both media in the period (``SMS + WhatsApp: 12``)."""

    media: tuple[str, str]
    labels: tuple[str, str]
    customers: int


@dataclass(frozen=True)
class Day:
    """One day of the period for the charts: customer messages per channel, the bot's outcomes."""

    day: date
    inbound: dict[int, int]
    bot_answers: int
    bot_handoffs: int


@dataclass(frozen=True)
class ChannelReport:
    since: datetime
    until: datetime
    team_id: int | None
    rows: list[ChannelRow]
    total: ChannelRow
    # Customers who wrote on two or more channels in the period, and their share of all who wrote.
    multichannel: int
    multichannel_share: float | None
    pairs: list[MediumPair]
    days: list[Day] = field(default_factory=list)
    first_response_buckets: list[int] = field(default_factory=list)
    resolution_buckets: list[int] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return self.total.has_data


def period(days: int, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last ``days`` days in the site's time zone: from midnight ``days - 1`` days ago until now."""
    now = now or timezone.now()
    zone = timezone.get_default_timezone()
    first_day = timezone.localtime(now, zone).date() - timedelta(days=days - 1)
    return datetime.combine(first_day, time.min, tzinfo=zone), now


def percentile(ordered: list[timedelta], fraction: float) -> timedelta | None:
    """The ``fraction`` quantile of sorted durations, interpolated between the closest ranks
    (the median of an even count is the mean of the middle two); None for no durations."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * fraction
    below, above = math.floor(rank), math.ceil(rank)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


def bucket_percentile(buckets: list[int], fraction: float) -> timedelta | None:
    """The ``fraction`` quantile read from histogram counts (:data:`reports.models.BUCKET_EDGES`),
    spreading each bucket's durations evenly across it (the open last bucket as wide as its start)."""
    count = sum(buckets)
    if not count:
        return None
    rank = (count - 1) * fraction
    seen = 0
    for index, n in enumerate(buckets):
        if n and rank < seen + n:
            low = BUCKET_EDGES[index]
            high = BUCKET_EDGES[index + 1] if index + 1 < len(BUCKET_EDGES) else 2 * low
            return timedelta(seconds=round(low + (high - low) * (rank - seen + 0.5) / n))
        seen += n
    return timedelta(seconds=BUCKET_EDGES[-1])


def _scope_teams(operator: Operator, team_id: int | None) -> list[int] | None:
    """The conversations' teams to count: one, the operator's, or None for every team (staff)."""
    if team_id is not None:
        return [team_id]
    if operator.is_staff:
        return None
    return list(operator.team_ids)


def channel_report(
    *, operator: Operator, since: datetime, until: datetime, team_id: int | None = None
) -> ChannelReport:
    """The channels' numbers from the day of ``since`` to the day of ``until`` (today: the
    customer counts assume the period ends now). Four to six queries."""
    channels = Channel.objects.visible_to(operator).select_related("team").order_by("name", "pk")
    if team_id is not None:
        channels = channels.filter(team_id=team_id)
    channel_list = list(channels)
    ids = [channel.pk for channel in channel_list]
    teams = _scope_teams(operator, team_id)
    first_day, last_day = local_day(since), local_day(until)

    stats = DailyChannelStats.objects.filter(day__gte=first_day, day__lte=last_day, channel_id__in=ids)
    facts = ConversationFact.objects.filter(channel_id__in=ids)
    if teams is not None:
        stats = stats.filter(team_id__in=teams)
        facts = facts.filter(team_id__in=teams)
    numbers = DAILY_COUNTS
    # The period's sums per channel, added up by the database; the histograms' columns too.
    sums: dict[int, dict[str, int]] = {}
    buckets: dict[str, dict[int, list[int]]] = {"first_response": {}, "resolution": {}}
    summed_rows: Any = stats.values("channel_id").annotate(
        **{f"sum_{name}": Sum(name) for name in (*numbers, *FIRST_RESPONSE_BUCKETS, *RESOLUTION_BUCKETS)}
    )
    for entry in summed_rows:
        sums[entry["channel_id"]] = {name: entry[f"sum_{name}"] for name in numbers}
        buckets["first_response"][entry["channel_id"]] = [entry[f"sum_{name}"] for name in FIRST_RESPONSE_BUCKETS]
        buckets["resolution"][entry["channel_id"]] = [entry[f"sum_{name}"] for name in RESOLUTION_BUCKETS]
    # Each day for the charts: a few numbers per channel and day.
    per_day: dict[date, dict[str, Any]] = {}
    for day, channel_id, inbound, answers, handoffs in stats.values_list(
        "day", "channel_id", "inbound", "bot_answers", "bot_handoffs"
    ):
        today = per_day.setdefault(day, {"inbound": {}, "answers": 0, "handoffs": 0})
        today["inbound"][channel_id] = today["inbound"].get(channel_id, 0) + inbound
        today["answers"] += answers
        today["handoffs"] += handoffs

    activity = ActivityCount.objects.filter(day__gte=first_day, team_id__in=teams if teams is not None else [ALL_TEAMS])
    customers = {row["key"]: row["n"] for row in activity.values("key").annotate(n=Sum("customers")).filter(n__gt=0)}
    all_customers = customers.get("all", 0)

    answered = sum(channel_sums["first_responses"] for channel_sums in sums.values())
    resolved_count = sum(channel_sums["resolved"] for channel_sums in sums.values())
    limit = settings.REPORTS_EXACT_PERCENTILES
    exact = answered <= limit and resolved_count <= limit
    first_responses: dict[int, list[timedelta]] = defaultdict(list)
    resolutions: dict[int, list[timedelta]] = defaultdict(list)
    if exact:
        start = datetime.combine(first_day, time.min, tzinfo=timezone.get_default_timezone())
        for channel_id, value in facts.filter(
            started_at__gte=start, started_at__lt=until, first_response__isnull=False
        ).values_list("channel_id", "first_response"):
            if value is not None:
                first_responses[channel_id].append(value)
        for channel_id, value in facts.filter(resolved_at__gte=start, resolved_at__lt=until).values_list(
            "channel_id", "resolution"
        ):
            if value is not None:
                resolutions[channel_id].append(value)

    def durations(kind: str, exact_values: dict[int, list[timedelta]], channel_id: int | None) -> Durations:
        if exact:
            if channel_id is None:
                return Durations.of([d for values in exact_values.values() for d in values])
            return Durations.of(exact_values[channel_id])
        if channel_id is None:
            total = [0] * len(BUCKET_EDGES)
            for channel_buckets in buckets[kind].values():
                total = [a + b for a, b in zip(total, channel_buckets, strict=True)]
            return Durations.from_buckets(total)
        return Durations.from_buckets(buckets[kind].get(channel_id, [0] * len(BUCKET_EDGES)))

    rows = []
    for channel in channel_list:
        channel_sums = sums.get(channel.pk, {})
        count = customers.get(f"c:{channel.pk}", 0)
        row = ChannelRow(
            channel_id=channel.pk,
            name=channel.name,
            medium=channel.medium,
            medium_label=str(channel.get_medium_display()),
            team=channel.team.name if channel.team else "",
            customers=count,
            customer_share=count / all_customers if all_customers else None,
            inbound=channel_sums.get("inbound", 0),
            outbound_people=channel_sums.get("outbound_people", 0),
            outbound_bot=channel_sums.get("outbound_bot", 0),
            started=channel_sums.get("started", 0),
            bot_answers=channel_sums.get("bot_answers", 0),
            bot_questions=channel_sums.get("bot_questions", 0),
            bot_handoffs=channel_sums.get("bot_handoffs", 0),
            first_response=durations("first_response", first_responses, channel.pk),
            resolved=channel_sums.get("resolved", 0),
            resolution=durations("resolution", resolutions, channel.pk),
        )
        if channel.is_active or row.has_data:
            rows.append(row)
    rows.sort(key=lambda row: (-row.customers, -row.inbound, row.name.casefold()))

    def total(attribute: str) -> int:
        return sum(getattr(row, attribute) for row in rows)

    total_row = ChannelRow(
        channel_id=None,
        name="",
        medium="",
        medium_label="",
        team="",
        customers=all_customers,
        customer_share=1.0 if all_customers else None,
        inbound=total("inbound"),
        outbound_people=total("outbound_people"),
        outbound_bot=total("outbound_bot"),
        started=total("started"),
        bot_answers=total("bot_answers"),
        bot_questions=total("bot_questions"),
        bot_handoffs=total("bot_handoffs"),
        first_response=durations("first_response", first_responses, None),
        resolved=total("resolved"),
        resolution=durations("resolution", resolutions, None),
    )
    multichannel = customers.get("multi", 0)
    shown = {row.channel_id for row in rows}
    days = []
    day = first_day
    while day <= last_day:
        numbers_of_day = per_day.get(day)
        days.append(
            Day(
                day=day,
                inbound={pk: n for pk, n in numbers_of_day["inbound"].items() if pk in shown} if numbers_of_day else {},
                bot_answers=numbers_of_day["answers"] if numbers_of_day else 0,
                bot_handoffs=numbers_of_day["handoffs"] if numbers_of_day else 0,
            )
        )
        day += timedelta(days=1)

    def summed(kind: str) -> list[int]:
        out = [0] * len(BUCKET_EDGES)
        for pk, channel_buckets in buckets[kind].items():
            if pk in shown:
                out = [a + b for a, b in zip(out, channel_buckets, strict=True)]
        return out

    return ChannelReport(
        since=since,
        until=until,
        team_id=team_id,
        rows=rows,
        total=total_row,
        multichannel=multichannel,
        multichannel_share=multichannel / all_customers if all_customers else None,
        pairs=_pairs(customers),
        days=days,
        first_response_buckets=summed("first_response"),
        resolution_buckets=summed("resolution"),
    )


def _pairs(customers: dict[str, int]) -> list[MediumPair]:
    """The pairs of media customers combined most in the period (a customer counts once per pair)."""
    order = {medium: index for index, medium in enumerate(Channel.Medium.values)}
    labels = dict(Channel.Medium.choices)
    counted = []
    for key, n in customers.items():
        if not key.startswith("p:"):
            continue
        first, second = key[2:].split("+", 1)
        if first in labels and second in labels:
            counted.append(((first, second), n))
    counted.sort(key=lambda item: (-item[1], order[item[0][0]], order[item[0][1]]))
    return [
        MediumPair(media=pair, labels=(str(labels[pair[0]]), str(labels[pair[1]])), customers=n)
        for pair, n in counted[:TOP_PAIRS]
    ]


# -- the download ----------------------------------------------------------------------------------


def _seconds(value: timedelta | None) -> int | str:
    return round(value.total_seconds()) if value is not None else ""


def _percent(value: float | None) -> float | str:
    return round(value * 100, 1) if value is not None else ""


def to_csv(report: ChannelReport) -> str:
    """The page's table as CSV: a header row, one row per channel, the total last; durations in seconds."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            _("Channel"),
            _("Medium"),
            _("Team"),
            _("Customers who wrote"),
            _("Share of customers who wrote (%)"),
            _("Customer messages"),
            _("Sent by people"),
            _("Sent by the bot"),
            _("Conversations started"),
            _("Bot answers"),
            _("Bot “did you mean” questions"),
            _("Bot hand-offs"),
            _("Hand-off share of bot decisions (%)"),
            _("Conversations answered by a person"),
            _("First response, median (s)"),
            _("First response, 90th percentile (s)"),
            _("Resolved conversations"),
            _("Time to resolution, median (s)"),
        ]
    )
    for row in [*report.rows, report.total]:
        writer.writerow(
            [
                safe_cell(row.name) if row.channel_id is not None else _("All channels"),
                row.medium_label,
                safe_cell(row.team),
                row.customers,
                _percent(row.customer_share),
                row.inbound,
                row.outbound_people,
                row.outbound_bot,
                row.started,
                row.bot_answers,
                row.bot_questions,
                row.bot_handoffs,
                _percent(row.handoff_share),
                row.first_response.count,
                _seconds(row.first_response.median),
                _seconds(row.first_response.p90),
                row.resolved,
                _seconds(row.resolution.median),
            ]
        )
    return out.getvalue()
