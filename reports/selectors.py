"""Reads for the Reports page: which channels customers really use, and how the bot and the team serve them.

Read-only. :func:`channel_report` answers one row per channel and a total row for a period, seen by
one operator: staff see every channel and conversation (or one team's, when they ask), other
operators their teams' channels and, within them, their teams' conversations only (the same rule
as the inbox, :meth:`inbox.models.ConversationQuerySet.visible_to`). It costs seven queries whatever
the size of the data: counts are aggregated in the database; the two durations are fetched as two
timestamps per conversation and their percentiles computed here (portable to SQLite and PostgreSQL).

The definitions, as the page explains them:

- a *customer message* is an inbound message from the customer (a call counts; an automatic reply,
  such as an out-of-office, does not);
- *customers who wrote* on a channel: distinct customers with a customer message on it in the
  period; their share is of every customer who wrote in the period, so the shares add up to more
  than 100 % when customers use several channels;
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
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from itertools import combinations
from typing import Any

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from bot.models import BotDecision
from common.cells import safe_cell
from inbox.models import Channel, Conversation, Message, Operator

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
TOP_PAIRS = 5

# A customer's own message: inbound from them, not an automatic reply (the core sets the key only when true).
CUSTOMER_WROTE = Q(direction=Message.Direction.INBOUND, sender=Message.Sender.CUSTOMER) & ~Q(
    metadata__has_key="auto_reply"
)
# Scheduled replies count once they leave (they take that time then); cancelled ones never do.
OPERATOR_WROTE = Q(
    kind=Message.Kind.MESSAGE, direction=Message.Direction.OUTBOUND, sender=Message.Sender.OPERATOR
) & ~Q(status__in=Message.NOT_SENT)
BOT_ACTIONS = (BotDecision.Action.ANSWER, BotDecision.Action.CLARIFY, BotDecision.Action.HANDOFF)


@dataclass(frozen=True)
class Durations:
    """How long something took over ``count`` conversations; None when there were none."""

    count: int
    median: timedelta | None
    p90: timedelta | None

    @classmethod
    def of(cls, values: list[timedelta]) -> Durations:
        ordered = sorted(values)
        return cls(count=len(ordered), median=percentile(ordered, 0.5), p90=percentile(ordered, 0.9))


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


def channel_report(
    *, operator: Operator, since: datetime, until: datetime, team_id: int | None = None
) -> ChannelReport:
    """The channels' numbers from ``since`` (included) to ``until`` (excluded). Seven queries."""
    channels = Channel.objects.visible_to(operator).select_related("team").order_by("name", "pk")
    conversations = Conversation.objects.visible_to(operator)
    if team_id is not None:
        channels = channels.filter(team_id=team_id)
        conversations = conversations.filter(team_id=team_id)
    channel_list = list(channels)
    ids = [channel.pk for channel in channel_list]
    in_period = Q(created_at__gte=since, created_at__lt=until)
    messages = Message.objects.filter(in_period, channel_id__in=ids)
    decisions = BotDecision.objects.filter(
        message__channel_id__in=ids, message__created_at__gte=since, message__created_at__lt=until
    )
    if team_id is not None or not operator.is_staff:
        # Not for staff asking for everything: there it would only make the database check every row.
        messages = messages.filter(conversation__in=conversations)
        decisions = decisions.filter(conversation__in=conversations)

    counts: dict[int, Any] = {
        row["channel_id"]: row
        for row in messages.values("channel_id").annotate(
            customers=Count("customer_id", distinct=True, filter=CUSTOMER_WROTE),
            inbound=Count("pk", filter=CUSTOMER_WROTE),
            outbound_people=Count(
                "pk",
                filter=Q(direction=Message.Direction.OUTBOUND, sender=Message.Sender.OPERATOR)
                & ~Q(status__in=Message.NOT_SENT),
            ),
            outbound_bot=Count("pk", filter=Q(direction=Message.Direction.OUTBOUND, sender=Message.Sender.BOT)),
        )
    }
    wrote = messages.filter(CUSTOMER_WROTE)
    all_customers = wrote.aggregate(n=Count("customer_id", distinct=True))["n"]
    multichannel, pairs = _combinations(wrote, {channel.pk: channel.medium for channel in channel_list})
    bot: dict[int, Any] = {
        row["channel_id"]: row
        for row in decisions.values(channel_id=F("message__channel_id")).annotate(
            **{f"n_{action}": Count("pk", filter=Q(action=action)) for action in BOT_ACTIONS}
        )
    }
    started, first_responses = _started(conversations, ids, since, until)
    resolved = _resolved(conversations, ids, since, until)

    rows = []
    for channel in channel_list:
        numbers, decided = counts.get(channel.pk, {}), bot.get(channel.pk, {})
        customers = numbers.get("customers", 0)
        row = ChannelRow(
            channel_id=channel.pk,
            name=channel.name,
            medium=channel.medium,
            medium_label=str(channel.get_medium_display()),
            team=channel.team.name if channel.team else "",
            customers=customers,
            customer_share=customers / all_customers if all_customers else None,
            inbound=numbers.get("inbound", 0),
            outbound_people=numbers.get("outbound_people", 0),
            outbound_bot=numbers.get("outbound_bot", 0),
            started=started[channel.pk],
            bot_answers=decided.get(f"n_{BotDecision.Action.ANSWER}", 0),
            bot_questions=decided.get(f"n_{BotDecision.Action.CLARIFY}", 0),
            bot_handoffs=decided.get(f"n_{BotDecision.Action.HANDOFF}", 0),
            first_response=Durations.of(first_responses[channel.pk]),
            resolved=len(resolved[channel.pk]),
            resolution=Durations.of(resolved[channel.pk]),
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
        first_response=Durations.of([d for durations in first_responses.values() for d in durations]),
        resolved=total("resolved"),
        resolution=Durations.of([d for durations in resolved.values() for d in durations]),
    )
    return ChannelReport(
        since=since,
        until=until,
        team_id=team_id,
        rows=rows,
        total=total_row,
        multichannel=multichannel,
        multichannel_share=multichannel / all_customers if all_customers else None,
        pairs=pairs,
    )


def _combinations(wrote: QuerySet[Message], media: dict[int, str]) -> tuple[int, list[MediumPair]]:
    """Customers who wrote on two or more channels, and the pairs of media they combine most.

    Only those customers' (customer, channel) pairs leave the database. A customer counts once for
    each pair of different media they used (two SMS lines make them omnichannel, not a pair).
    """
    several = wrote.values("customer_id").annotate(n=Count("channel_id", distinct=True)).filter(n__gte=2)
    used: dict[int, set[str]] = defaultdict(set)
    for customer_id, channel_id in (
        wrote.filter(customer_id__in=several.values("customer_id")).values_list("customer_id", "channel_id").distinct()
    ):
        used[customer_id].add(media[channel_id])
    order = {medium: index for index, medium in enumerate(Channel.Medium.values)}
    counted: Counter[tuple[str, str]] = Counter()
    for customer_media in used.values():
        counted.update(combinations(sorted(customer_media, key=order.__getitem__), 2))
    labels = dict(Channel.Medium.choices)
    pairs = [
        MediumPair(media=pair, labels=(str(labels[pair[0]]), str(labels[pair[1]])), customers=n)
        for pair, n in sorted(counted.items(), key=lambda item: (-item[1], order[item[0][0]], order[item[0][1]]))
    ]
    return len(used), pairs[:TOP_PAIRS]


def _first_customer_message(field: str) -> Subquery:
    return Subquery(
        Message.objects.filter(CUSTOMER_WROTE, conversation_id=OuterRef("pk"))
        .order_by("created_at", "pk")
        .values(field)[:1]
    )


def _started(
    conversations: QuerySet[Conversation], ids: list[int], since: datetime, until: datetime
) -> tuple[Counter[int], dict[int, list[timedelta]]]:
    """Conversations started in the period per channel of their first customer message, and their first responses."""
    rows = (
        conversations.filter(created_at__gte=since, created_at__lt=until)
        .annotate(first_channel=_first_customer_message("channel_id"), first_in=_first_customer_message("created_at"))
        .annotate(
            first_reply=Subquery(
                Message.objects.filter(
                    OPERATOR_WROTE, conversation_id=OuterRef("pk"), created_at__gte=OuterRef("first_in")
                )
                .order_by("created_at", "pk")
                .values("created_at")[:1]
            )
        )
        .values_list("first_channel", "first_in", "first_reply")
    )
    wanted = set(ids)
    started: Counter[int] = Counter()
    responses: dict[int, list[timedelta]] = defaultdict(list)
    for channel_id, first_in, first_reply in rows:
        if channel_id not in wanted:  # no customer message, or another team's channel: not a row here
            continue
        started[channel_id] += 1
        if first_reply is not None:
            responses[channel_id].append(first_reply - first_in)
    return started, responses


def _resolved(
    conversations: QuerySet[Conversation], ids: list[int], since: datetime, until: datetime
) -> dict[int, list[timedelta]]:
    """Times to resolution of the conversations resolved in the period, per channel of their first customer message."""
    rows = (
        conversations.filter(status=Conversation.Status.RESOLVED, resolved_at__gte=since, resolved_at__lt=until)
        .annotate(first_channel=_first_customer_message("channel_id"), first_in=_first_customer_message("created_at"))
        .values_list("first_channel", "first_in", "resolved_at")
    )
    wanted = set(ids)
    durations: dict[int, list[timedelta]] = defaultdict(list)
    for channel_id, first_in, resolved_at in rows:
        if channel_id not in wanted:
            continue
        durations[channel_id].append(max(resolved_at - first_in, timedelta(0)))
    return durations


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
