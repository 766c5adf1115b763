"""Rollups: the Reports page's figures kept per day, so that a period costs its days, not its messages.

Written only by :mod:`reports.rollups` (the worker, as events happen, and ``manage.py reports
rebuild``), always recomputed from the source rows (messages, conversations, bot decisions), never
incremented blindly: a re-delivered event, a retried task or a rebuild running beside the worker
writes the same numbers again. Days are dates in the installation's ``TIME_ZONE`` (the same days the
page's periods use). ``team_id`` is the conversation's team (0: none); it is a plain integer, not a
foreign key, so that a deleted team's history stays countable and the rows stay narrow.
"""

from __future__ import annotations

from django.db import models

from inbox.models import Channel, Conversation

# The scope of the customer-activity rows that count every team at once (what staff see by default).
ALL_TEAMS = -1
NO_TEAM = 0

# Fixed histogram buckets for first response and resolution times, in seconds: bucket i holds
# durations in [EDGES[i], EDGES[i + 1]); the last one is open-ended.
BUCKET_EDGES: tuple[int, ...] = (
    0,
    60,
    5 * 60,
    15 * 60,
    30 * 60,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    24 * 3600,
    2 * 24 * 3600,
    7 * 24 * 3600,
)


# One integer column per bucket (added to DailyChannelStats below), so that the database sums them.
FIRST_RESPONSE_BUCKETS = [f"first_response_{i}" for i in range(len(BUCKET_EDGES))]
RESOLUTION_BUCKETS = [f"resolution_{i}" for i in range(len(BUCKET_EDGES))]


class DailyChannelStats(models.Model):
    """One channel's figures on one day for one team's conversations."""

    day = models.DateField()
    team_id = models.BigIntegerField(default=NO_TEAM)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    # Messages of the day (by their time): the customer's own, operators' sent ones, the bot's.
    inbound = models.PositiveIntegerField(default=0)
    outbound_people = models.PositiveIntegerField(default=0)
    outbound_bot = models.PositiveIntegerField(default=0)
    # The bot's decisions on the day's customer messages.
    bot_answers = models.PositiveIntegerField(default=0)
    bot_questions = models.PositiveIntegerField(default=0)
    bot_handoffs = models.PositiveIntegerField(default=0)
    # Conversations started on the day (on the channel of their first customer message) and, of
    # them, those a person answered, with the sum and histogram of the first-response times.
    started = models.PositiveIntegerField(default=0)
    first_responses = models.PositiveIntegerField(default=0)
    first_response_seconds = models.BigIntegerField(default=0)
    # + first_response_0 … first_response_11: the histogram (FIRST_RESPONSE_BUCKETS)
    # Conversations resolved on the day (and still resolved), with their times to resolution.
    resolved = models.PositiveIntegerField(default=0)
    resolution_seconds = models.BigIntegerField(default=0)
    # + resolution_0 … resolution_11 (RESOLUTION_BUCKETS)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "team_id", "channel"], name="reports_daily_key"),
        ]
        indexes = [models.Index(fields=["team_id", "day"], name="reports_daily_team_day")]

    def __str__(self) -> str:
        return f"{self.day} team {self.team_id} channel {self.channel_id}"


for _name in FIRST_RESPONSE_BUCKETS + RESOLUTION_BUCKETS:
    DailyChannelStats.add_to_class(_name, models.PositiveIntegerField(default=0))


class ConversationFact(models.Model):
    """What the reports need of one conversation, from its messages: kept so that a day's
    conversation figures, and exact percentiles over a small period, cost an index range."""

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, primary_key=True, related_name="+")
    team_id = models.BigIntegerField(default=NO_TEAM)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")  # of the first customer message
    started_at = models.DateTimeField()
    first_in = models.DateTimeField()
    first_response = models.DurationField(null=True)
    resolved_at = models.DateTimeField(null=True)  # only while the conversation is resolved
    resolution = models.DurationField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["started_at"], name="reports_fact_started"),
            models.Index(fields=["resolved_at"], name="reports_fact_resolved"),
        ]

    def __str__(self) -> str:
        return f"facts of conversation {self.conversation_id}"


class CustomerActivity(models.Model):
    """The last day a customer wrote on each channel, within one team's conversations (or all
    teams': ``team_id`` -1). A period always ends now, so "wrote in the last N days" is "last day
    on or after the first day of the period": :class:`ActivityCount` keeps those last days counted."""

    customer_id = models.BigIntegerField()
    team_id = models.BigIntegerField()
    last_days = models.JSONField(default=dict)  # {"<channel id>": "YYYY-MM-DD"}

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer_id", "team_id"], name="reports_activity_key")]

    def __str__(self) -> str:
        return f"customer {self.customer_id} team {self.team_id}"


class ActivityCount(models.Model):
    """How many customers' last day of a kind of activity falls on ``day``, per team (-1: all).

    ``key``: ``c:<channel id>`` (wrote on the channel), ``all`` (wrote at all), ``multi`` (the
    second-latest of their channels' last days: wrote on two or more channels since then),
    ``p:<medium>+<medium>`` (the earlier of the two media's last days: used both since then).
    Customers who wrote in the last N days = the sum over days in the period.
    """

    team_id = models.BigIntegerField()
    key = models.CharField(max_length=40)
    day = models.DateField()
    customers = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team_id", "key", "day"], name="reports_count_key")]

    def __str__(self) -> str:
        return f"{self.key} {self.day} team {self.team_id}: {self.customers}"


class PendingRefresh(models.Model):
    """Something an event touched, waiting for the worker to recompute its figures (``kind``:
    ``conversation``, ``customer`` or ``day``). One row per thing however many events: the
    debounce. ``marked_at`` moves with each new mark, so the worker deletes only what it saw."""

    kind = models.CharField(max_length=12)
    key = models.CharField(max_length=40)
    marked_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="reports_pending_key")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"
