"""The only writer of the report rollups (:mod:`reports.models`): recompute from source rows.

Every function here derives its rows from the messages, conversations and bot decisions as they are
now, and overwrites what was there. That is the idempotency: an event delivered twice, a retried
task, or ``manage.py reports rebuild`` running while the worker also refreshes, all write the same
figures; nothing is ever counted by ``x = x + 1`` on the strength of an event alone. The one
incremental table, :class:`~reports.models.ActivityCount`, moves by the difference between a
customer's old and new recomputed state, under one lock, so it too cannot drift.

Why recompute instead of recording event ids: the figures depend on more than one event (a first
response belongs to the day the conversation started; a reopen takes a resolution back; a scheduled
reply counts only once it leaves), so a counter per event would need the same reads anyway, and a
table of seen event ids would grow with the messages. A day's recomputation is a few indexed
aggregates over that day's rows (tens of milliseconds at 10 million messages); events only *mark*
what they touched (:func:`mark`, one upsert) and the worker refreshes the marks in batches, a couple
of seconds later (:func:`refresh_pending`), so a busy day is recomputed once per batch, not per message.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from itertools import combinations
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from bot.models import BotDecision
from inbox.models import Channel, Conversation, Message
from reports.models import (
    ALL_TEAMS,
    BUCKET_EDGES,
    FIRST_RESPONSE_BUCKETS,
    RESOLUTION_BUCKETS,
    ActivityCount,
    ConversationFact,
    CustomerActivity,
    DailyChannelStats,
    PendingRefresh,
)

logger = logging.getLogger(__name__)

# A customer's own message: inbound from them, not an automatic reply (the core sets the key only when true).
CUSTOMER_WROTE = Q(direction=Message.Direction.INBOUND, sender=Message.Sender.CUSTOMER) & ~Q(
    metadata__has_key="auto_reply"
)
# Scheduled replies count once they leave (they take that time then); cancelled ones never do.
OPERATOR_WROTE = Q(
    kind=Message.Kind.MESSAGE, direction=Message.Direction.OUTBOUND, sender=Message.Sender.OPERATOR
) & ~Q(status__in=Message.NOT_SENT)
# The advisory-lock key of the customer-activity writers ("PR": Parley reports), PostgreSQL only.
ACTIVITY_LOCK = (0x5052, 1)
CHUNK = 5_000


# -- days --------------------------------------------------------------------------------------------


def local_day(moment: datetime) -> date:
    """The day ``moment`` falls on in the installation's time zone (the page's days)."""
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Local midnight of ``day`` and of the next day (23 or 25 hours apart across a DST change)."""
    zone = timezone.get_default_timezone()
    return datetime.combine(day, time.min, tzinfo=zone), datetime.combine(
        day + timedelta(days=1), time.min, tzinfo=zone
    )


def bucket_of(value: timedelta) -> int:
    seconds = value.total_seconds()
    index = 0
    for i, edge in enumerate(BUCKET_EDGES):
        if seconds >= edge:
            index = i
    return index


# -- marks (the receivers' side) ------------------------------------------------------------------------


def mark(kind: str, keys: Iterable[object]) -> None:
    """Note that events touched these conversations / customers / days (:func:`mark_many`)."""
    mark_many([(kind, key) for key in keys])


def mark_many(touched: Iterable[tuple[str, object]], *, due: datetime | None = None) -> None:
    """Note that events touched these (kind, key) pairs: one multi-row upsert, whatever their
    number (a customer's message marks its customer and its conversation in one statement: this
    runs after every message on the way in). ``due``: not to be refreshed before then (now)."""
    marked_at = due or timezone.now()
    rows = list(dict.fromkeys((kind, str(key)) for kind, key in touched))  # one row per key
    if not rows:
        return
    table = connection.ops.quote_name(PendingRefresh._meta.db_table)
    values = ", ".join(["(%s, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (kind, key, marked_at) VALUES {values} "  # noqa: S608 - names from _meta
            "ON CONFLICT (kind, key) DO UPDATE SET marked_at = EXCLUDED.marked_at",
            [value for kind, key in rows for value in (kind, key, marked_at)],
        )


def refresh_pending(*, limit: int = 2_000) -> int:
    """The worker's batch: recompute everything marked, then forget the marks it saw (a mark made
    meanwhile moved ``marked_at`` on and stays for the next batch). Returns how many marks it took."""
    started = timezone.now()
    pending = list(PendingRefresh.objects.filter(marked_at__lte=started).values_list("pk", "kind", "key")[:limit])
    if not pending:
        return 0
    wanted: dict[str, set[str]] = defaultdict(set)
    for _, kind, key in pending:
        wanted[kind].add(key)
    days = {date.fromisoformat(key) for key in wanted["day"]}
    days |= refresh_conversations([int(key) for key in wanted["conversation"]])
    refresh_days(_due_days(days, started))
    refresh_customers([int(key) for key in wanted["customer"]])
    PendingRefresh.objects.filter(pk__in=[pk for pk, _, _ in pending], marked_at__lte=started).delete()
    return len(pending)


def _due_days(days: set[date], now: datetime) -> set[date]:
    """The days to recompute now: each at most once every ``REPORTS_DAY_REFRESH_SECONDS``.

    A day's recompute reads all of its messages (about 2 s for a day of 120 000): under a steady
    stream, a refresh every burst made it half of the worker's CPU per message (bench.ingest,
    docs/performance.md). A day recomputed less than that long ago is marked again, due when its
    interval ends: the refresh after that (the next burst's, or the scheduler's minute) takes it.
    Conversations and customers are still refreshed at every burst.
    """
    every = settings.REPORTS_DAY_REFRESH_SECONDS
    if every <= 0:
        return days
    due, later = set(), []
    for day in days:
        if cache.add(f"reports:day-refreshed:{day.isoformat()}", 1, timeout=every):
            due.add(day)
        else:
            later.append(("day", day.isoformat()))
    if later:
        mark_many(later, due=now + timedelta(seconds=every))
    return due


# -- conversations ------------------------------------------------------------------------------------


def _first_customer_message(field: str) -> Subquery:
    return Subquery(
        Message.objects.filter(CUSTOMER_WROTE, conversation_id=OuterRef("pk"))
        .order_by("created_at", "pk")
        .values(field)[:1]
    )


def _facts(conversations: QuerySet[Conversation]) -> list[ConversationFact]:
    rows = (
        conversations.annotate(
            first_channel=_first_customer_message("channel_id"), first_in=_first_customer_message("created_at")
        )
        .annotate(
            first_reply=Subquery(
                Message.objects.filter(
                    OPERATOR_WROTE, conversation_id=OuterRef("pk"), created_at__gte=OuterRef("first_in")
                )
                .order_by("created_at", "pk")
                .values("created_at")[:1]
            )
        )
        .values_list("pk", "team_id", "created_at", "status", "resolved_at", "first_channel", "first_in", "first_reply")
    )
    facts = []
    for pk, team_id, created_at, status, resolved_at, channel_id, first_in, first_reply in rows:
        if channel_id is None:  # no customer message (an operator called first): not a conversation here
            continue
        resolved = resolved_at if status == Conversation.Status.RESOLVED and resolved_at is not None else None
        facts.append(
            ConversationFact(
                conversation_id=pk,
                team_id=team_id or 0,
                channel_id=channel_id,
                started_at=created_at,
                first_in=first_in,
                first_response=first_reply - first_in if first_reply is not None else None,
                resolved_at=resolved,
                resolution=max(resolved - first_in, timedelta(0)) if resolved is not None else None,
            )
        )
    return facts


def _fact_days(rows: Iterable[tuple[datetime, datetime | None]]) -> set[date]:
    days = set()
    for started_at, resolved_at in rows:
        days.add(local_day(started_at))
        if resolved_at is not None:
            days.add(local_day(resolved_at))
    return days


def refresh_conversations(ids: list[int]) -> set[date]:
    """Recompute these conversations' facts; returns the days whose figures they touched (today
    always: the event behind a mark was a message, a status or a resolution of today)."""
    touched = {local_day(timezone.now())}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with transaction.atomic():
            old = ConversationFact.objects.filter(pk__in=chunk)
            touched |= _fact_days(old.values_list("started_at", "resolved_at"))
            facts = _facts(Conversation.objects.filter(pk__in=chunk))
            _write_facts(facts, chunk)
            touched |= _fact_days((fact.started_at, fact.resolved_at) for fact in facts)
    return touched


def _write_facts(facts: list[ConversationFact], ids: list[int]) -> None:
    ConversationFact.objects.bulk_create(
        facts,
        update_conflicts=True,
        unique_fields=["conversation"],
        update_fields=["team_id", "channel", "started_at", "first_in", "first_response", "resolved_at", "resolution"],
    )
    kept = {fact.conversation_id for fact in facts}
    gone = [pk for pk in ids if pk not in kept]
    if gone:
        ConversationFact.objects.filter(pk__in=gone).delete()


# -- days ---------------------------------------------------------------------------------------------


def _row(rows: dict[tuple[int, int], DailyChannelStats], day: date, channel_id: int, team_id: int) -> DailyChannelStats:
    key = (channel_id, team_id)
    if key not in rows:
        rows[key] = DailyChannelStats(day=day, channel_id=channel_id, team_id=team_id)
    return rows[key]


# A channel's day in counts (what the reports add up over a period), then every stored figure.
DAILY_COUNTS = (
    "inbound",
    "outbound_people",
    "outbound_bot",
    "bot_answers",
    "bot_questions",
    "bot_handoffs",
    "started",
    "first_responses",
    "resolved",
)
DAILY_FIELDS = [
    *DAILY_COUNTS,
    "first_response_seconds",
    "resolution_seconds",
    *FIRST_RESPONSE_BUCKETS,
    *RESOLUTION_BUCKETS,
]


def refresh_days(days: Iterable[date]) -> None:
    """Recompute every channel's figures of these days from the source rows (facts included)."""
    for day in sorted(set(days)):
        refresh_day(day)


def refresh_day(day: date, *, channel_ids: list[int] | None = None) -> None:
    """Recompute one day. The messages are read per channel through ``msg_channel_period``
    (channel, created_at) and grouped by conversation; the conversations' teams come in a second
    query by primary key. A join, or a filter on the time alone, made PostgreSQL scan every message
    (there is no index on the time alone) for each day."""
    start, end = day_bounds(day)
    if channel_ids is None:
        channel_ids = list(Channel.objects.values_list("pk", flat=True))
    rows: dict[tuple[int, int], DailyChannelStats] = {}
    messages = list(
        Message.objects.filter(channel_id__in=channel_ids, created_at__gte=start, created_at__lt=end)
        .values_list("channel_id", "conversation_id")
        .annotate(
            n_in=Count("pk", filter=CUSTOMER_WROTE),
            n_people=Count(
                "pk",
                filter=Q(direction=Message.Direction.OUTBOUND, sender=Message.Sender.OPERATOR)
                & ~Q(status__in=Message.NOT_SENT),
            ),
            n_bot=Count("pk", filter=Q(direction=Message.Direction.OUTBOUND, sender=Message.Sender.BOT)),
        )
        .order_by()
    )
    decisions = list(
        BotDecision.objects.filter(
            message__channel_id__in=channel_ids, message__created_at__gte=start, message__created_at__lt=end
        )
        .values_list("message__channel_id", "conversation_id")
        .annotate(
            answers=Count("pk", filter=Q(action=BotDecision.Action.ANSWER)),
            questions=Count("pk", filter=Q(action=BotDecision.Action.CLARIFY)),
            handoffs=Count("pk", filter=Q(action=BotDecision.Action.HANDOFF)),
        )
        .order_by()
    )
    wanted = {conversation_id for _, conversation_id, *_ in messages} | {c for _, c, *_ in decisions}
    teams: dict[int, int] = {}
    ordered = sorted(wanted)
    for first in range(0, len(ordered), CHUNK):
        teams.update(
            (pk, team_id or 0)
            for pk, team_id in Conversation.objects.filter(pk__in=ordered[first : first + CHUNK]).values_list(
                "pk", "team_id"
            )
        )
    for channel_id, conversation_id, n_in, n_people, n_bot in messages:
        row = _row(rows, day, channel_id, teams.get(conversation_id, 0))
        row.inbound += n_in
        row.outbound_people += n_people
        row.outbound_bot += n_bot
    for channel_id, conversation_id, answers, questions, handoffs in decisions:
        if channel_id is None:
            continue
        row = _row(rows, day, channel_id, teams.get(conversation_id, 0))
        row.bot_answers += answers
        row.bot_questions += questions
        row.bot_handoffs += handoffs
    for channel_id, team_id, first_response in ConversationFact.objects.filter(
        started_at__gte=start, started_at__lt=end
    ).values_list("channel_id", "team_id", "first_response"):
        row = _row(rows, day, channel_id, team_id)
        row.started += 1
        if first_response is not None:
            row.first_responses += 1
            row.first_response_seconds += round(first_response.total_seconds())
            bucket = FIRST_RESPONSE_BUCKETS[bucket_of(first_response)]
            setattr(row, bucket, getattr(row, bucket) + 1)
    for channel_id, team_id, resolution in ConversationFact.objects.filter(
        resolved_at__gte=start, resolved_at__lt=end
    ).values_list("channel_id", "team_id", "resolution"):
        row = _row(rows, day, channel_id, team_id)
        if resolution is None:  # a resolved fact always has its time; the type cannot say so
            continue
        row.resolved += 1
        row.resolution_seconds += round(resolution.total_seconds())
        bucket = RESOLUTION_BUCKETS[bucket_of(resolution)]
        setattr(row, bucket, getattr(row, bucket) + 1)
    with transaction.atomic():
        DailyChannelStats.objects.bulk_create(
            list(rows.values()),
            update_conflicts=True,
            unique_fields=["day", "team_id", "channel"],
            update_fields=DAILY_FIELDS,
        )
        stale = DailyChannelStats.objects.filter(day=day)
        for channel_id, team_id in rows:
            stale = stale.exclude(channel_id=channel_id, team_id=team_id)
        stale.delete()


# -- customers ----------------------------------------------------------------------------------------


Contribution = tuple[str, date]


def contributions(last_days: dict[str, str], media: dict[int, str]) -> list[Contribution]:
    """What one customer's state adds to :class:`~reports.models.ActivityCount` (see its keys)."""
    if not last_days:
        return []
    days = {int(channel): date.fromisoformat(day) for channel, day in last_days.items()}
    out: list[Contribution] = [(f"c:{channel}", day) for channel, day in days.items()]
    ordered = sorted(days.values(), reverse=True)
    out.append(("all", ordered[0]))
    if len(ordered) >= 2:
        out.append(("multi", ordered[1]))
    by_medium: dict[str, date] = {}
    for channel, day in days.items():
        medium = media.get(channel)
        if medium is not None and (medium not in by_medium or by_medium[medium] < day):
            by_medium[medium] = day
    order = {medium: index for index, medium in enumerate(Channel.Medium.values)}
    for first, second in combinations(sorted(by_medium, key=lambda m: order.get(m, len(order))), 2):
        out.append((f"p:{first}+{second}", min(by_medium[first], by_medium[second])))
    return out


def _states(customers: Q) -> dict[tuple[int, int], dict[str, str]]:
    """Every (customer, team) state from the messages, and each customer's all-teams state."""
    states: dict[tuple[int, int], dict[str, str]] = defaultdict(dict)
    rows = (
        Message.objects.filter(customers, CUSTOMER_WROTE, channel_id__isnull=False)
        .values("customer_id", "channel_id", team=Coalesce(F("conversation__team_id"), Value(0)))
        .annotate(last=Max("created_at"))
    )
    for entry in rows:
        day = local_day(entry["last"]).isoformat()
        channel = str(entry["channel_id"])
        for team_id in (entry["team"], ALL_TEAMS):
            state = states[(entry["customer_id"], team_id)]
            if state.get(channel, "") < day:
                state[channel] = day
    return states


def refresh_customers(ids: list[int], *, media: dict[int, str] | None = None) -> None:
    """Recompute these customers' last days per channel and move the counts by the difference."""
    media = media if media is not None else dict(Channel.objects.values_list("pk", "medium"))
    for start in range(0, len(ids), CHUNK):
        _refresh_customers(Q(customer_id__in=ids[start : start + CHUNK]), media)


def _refresh_customers(customers: Q, media: dict[int, str]) -> None:
    """One transaction: ``customers`` (a filter on ``customer_id``: a list, or a range for the rebuild)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # one writer of the counts at a time (worker, rebuild)
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(ACTIVITY_LOCK))
        old = {
            (row.customer_id, row.team_id): row
            for row in CustomerActivity.objects.select_for_update().filter(customers)
        }
        new = _states(customers)
        delta: Counter[tuple[int, str, date]] = Counter()
        for (customer_id, team_id), row in old.items():
            if new.get((customer_id, team_id)) == row.last_days:
                continue
            for key, day in contributions(row.last_days, media):
                delta[(team_id, key, day)] -= 1
        changed = []
        for (customer_id, team_id), state in new.items():
            previous = old.get((customer_id, team_id))
            if previous is not None and previous.last_days == state:
                continue
            for key, day in contributions(state, media):
                delta[(team_id, key, day)] += 1
            changed.append(CustomerActivity(customer_id=customer_id, team_id=team_id, last_days=state))
        CustomerActivity.objects.bulk_create(
            changed, update_conflicts=True, unique_fields=["customer_id", "team_id"], update_fields=["last_days"]
        )
        gone = [row.pk for key, row in old.items() if key not in new]
        if gone:
            CustomerActivity.objects.filter(pk__in=gone).delete()
        _add_counts(delta)


def _add_counts(delta: Counter[tuple[int, str, date]]) -> None:
    rows = [(team_id, key, day, n) for (team_id, key, day), n in delta.items() if n]
    if not rows:
        return
    table = connection.ops.quote_name(ActivityCount._meta.db_table)
    with connection.cursor() as cursor:
        # Many rows a statement: a rebuild's chunk moves tens of thousands of (team, key, day) counts.
        for start in range(0, len(rows), 500):
            batch = rows[start : start + 500]
            cursor.execute(
                f"INSERT INTO {table} (team_id, key, day, customers) VALUES "  # noqa: S608 - names from _meta
                + ", ".join(["(%s, %s, %s, %s)"] * len(batch))
                + f" ON CONFLICT (team_id, key, day) DO UPDATE SET customers = {table}.customers + EXCLUDED.customers",
                [value for row in batch for value in row],
            )


# -- rebuild ------------------------------------------------------------------------------------------

Progress = Callable[[str], None]


def rebuild(*, since: date | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Recompute the rollups from the source rows: the facts of conversations started or resolved
    since ``since`` (all when None), every day from then to today, and every customer's activity.

    Chunked (a few thousand conversations, one day, a few thousand customers per transaction), so
    it can run while the worker refreshes: both write what the source rows say.
    """
    say = progress or (lambda line: None)
    counts: dict[str, Any] = {"conversations": 0, "days": 0, "customers": 0}
    conversations = Conversation.objects.all()
    if since is not None:
        start = day_bounds(since)[0]
        conversations = conversations.filter(Q(created_at__gte=start) | Q(resolved_at__gte=start))
    last = 0
    while True:
        ids = list(conversations.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:CHUNK])
        if not ids:
            break
        with transaction.atomic():
            _write_facts(_facts(Conversation.objects.filter(pk__in=ids)), ids)
        last = ids[-1]
        counts["conversations"] += len(ids)
        say(f"facts: {counts['conversations']:,} conversations")

    first = since
    if first is None:
        oldest = Message.objects.aggregate(first=Min("created_at"))["first"]
        first = local_day(oldest) if oldest is not None else local_day(timezone.now())
    today = local_day(timezone.now())
    channel_ids = list(Channel.objects.values_list("pk", flat=True))
    day = first
    while day <= today:
        refresh_day(day, channel_ids=channel_ids)
        counts["days"] += 1
        if counts["days"] % 30 == 0:
            say(f"days: {day}")
        day += timedelta(days=1)
    if since is None:
        DailyChannelStats.objects.filter(day__lt=first).delete()

    media = dict(Channel.objects.values_list("pk", "medium"))
    top = Message.objects.aggregate(top=Max("customer_id"))["top"] or 0
    step = 4 * CHUNK
    for low in range(0, top + 1, step):
        _refresh_customers(Q(customer_id__gte=low, customer_id__lt=low + step), media)
        counts["customers"] = min(low + step, top)
        if (low // step) % 20 == 0:
            say(f"customers: {counts['customers']:,} of {top:,}")
    return counts
