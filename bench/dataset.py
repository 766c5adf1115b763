"""Synthetic support data at scale, loaded fast, for the benchmarks.

The shape follows a real support inbox: customers with one to three identities, conversations spread
over three teams and channels of several media, most of them resolved, a tail of customers with
hundreds of messages, private notes and activity entries among the messages. Rows are generated in
Python from a seeded random generator and written with PostgreSQL ``COPY`` (psycopg 3), customer
chunk by customer chunk, in one transaction: a load either completes or leaves nothing behind.
Table and column names come from the models' ``_meta``. On other databases (the test suite's SQLite)
the same rows go through ``bulk_create``, so a tiny load proves the generator still matches the
models.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.models import Max
from django.utils import timezone

from connectors.simulator import MEDIUM_IDENTITY
from customers.models import Customer, CustomerNote, Identity
from customers.services import best_contact
from inbox.models import Channel, Conversation, Message, Operator, Team

BENCH_OPERATOR = "bench-operator"
OPERATORS = 20
CHUNK = 2_000  # customers generated and copied at a time

TEAMS = {
    "Support": ["sms", "whatsapp", "webchat", "voice"],
    "Sales": ["email", "messenger"],
    "Billing": ["telegram", "viber"],
}
# How often each medium starts a conversation (the channel decides the team).
MEDIUM_WEIGHTS = {
    "whatsapp": 30,
    "sms": 18,
    "email": 18,
    "webchat": 12,
    "telegram": 8,
    "messenger": 7,
    "viber": 4,
    "voice": 3,
}
FIRST_NAMES = [
    "Ava",
    "Ben",
    "Chloe",
    "Dmytro",
    "Elena",
    "Farid",
    "Grace",
    "Hana",
    "Ivan",
    "Jon",
    "Kira",
    "Leila",
    "Marco",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uma",
    "Viktor",
    "Wen",
    "Yusuf",
    "Zoe",
]
LAST_NAMES = [
    "Adams",
    "Bauer",
    "Chen",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Horvat",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Novak",
    "Olsen",
    "Petrov",
    "Rahimi",
    "Santos",
    "Tanaka",
    "Weber",
    "Young",
    "Zhang",
]
LANGUAGES = ["en"] * 6 + ["ru", "uk", "fa", ""]
LABELS = ["billing", "refund", "bug", "shipping", "feedback", "urgent"]
PLANS = ["free", "starter", "pro", "enterprise"]
SENTENCES = [
    "Hi, my order has not arrived yet.",
    "Could you check the status of my refund?",
    "Thanks, that solved it!",
    "I was charged twice this month.",
    "The app keeps logging me out after the update.",
    "Can I change the delivery address?",
    "We have forwarded this to the billing team.",
    "Your tracking number is attached below.",
    "Is there a discount for annual plans?",
    "Please send a photo of the damaged item.",
    "I'd like to cancel my subscription.",
    "The invoice shows the wrong company name.",
    "Sorry for the wait, looking into it now.",
    "The password reset email never came.",
    "Great, see you tomorrow then.",
    "Can someone call me back this afternoon?",
]
NOTES = [
    "Customer is on the legacy plan, check before offering the discount.",
    "Escalated to engineering, ticket attached.",
    "Called back, no answer; try again tomorrow.",
    "Refund approved by finance.",
]
ACTIVITIES = ["Assigned", "Resolved", "Reopened", "Priority changed", "Snoozed", "Handed off by the bot"]


@dataclass(frozen=True)
class Fixtures:
    """The small, ORM-created part of the data set: teams, operators, channels."""

    teams: list[Team]
    operators: list[Operator]
    team_operators: dict[int, list[int]]
    channels: dict[str, Channel]
    bench_operator: Operator


@dataclass
class Chunk:
    customers: list[tuple[Any, ...]] = field(default_factory=list)
    identities: list[tuple[Any, ...]] = field(default_factory=list)
    conversations: list[tuple[Any, ...]] = field(default_factory=list)
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    notes: list[tuple[Any, ...]] = field(default_factory=list)


class Table:
    """A model's table as the loader writes it: the listed fields, in order, in every row."""

    def __init__(self, model: type[models.Model], names: Sequence[str]) -> None:
        meta = model._meta
        self.model = model
        self.fields = [meta.get_field(name) for name in names]
        missing = {f.name for f in meta.concrete_fields} - {f.name for f in self.fields}
        if missing:
            raise RuntimeError(f"the bench loader does not fill {model.__name__}.{', '.join(sorted(missing))}")
        self.attnames = [f.attname for f in self.fields]  # type: ignore[union-attr]
        self.json_positions = [i for i, f in enumerate(self.fields) if isinstance(f, models.JSONField)]

    def copy_sql(self) -> str:
        qn = connection.ops.quote_name
        columns = ", ".join(qn(f.column) for f in self.fields)  # type: ignore[union-attr]
        return f"COPY {qn(self.model._meta.db_table)} ({columns}) FROM STDIN"

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor, cursor.copy(self.copy_sql()) as copy:
                if self.json_positions:
                    for row in rows:
                        values = list(row)
                        for i in self.json_positions:
                            values[i] = json.dumps(values[i])
                        copy.write_row(values)
                else:
                    for row in rows:
                        copy.write_row(row)
        else:
            self.model.objects.bulk_create(
                [self.model(**dict(zip(self.attnames, row, strict=True))) for row in rows], batch_size=500
            )


CUSTOMERS = Table(
    Customer,
    [
        "id",
        "name",
        "language",
        "attributes",
        "labels",
        "is_vip",
        "contact_kind",
        "contact",
        "external_id",
        "merged_into",
        "created_at",
        "updated_at",
    ],
)
IDENTITIES = Table(Identity, ["id", "customer", "kind", "value", "display", "verified", "created_at"])
CONVERSATIONS = Table(
    Conversation,
    [
        "id",
        "customer",
        "team",
        "status",
        "handler",
        "assignee",
        "priority",
        "labels",
        "subject",
        "last_channel",
        "last_message_at",
        "last_inbound_at",
        "last_message_preview",
        "waiting_since",
        "snoozed_until",
        "resolved_at",
        "created_at",
        "version",
    ],
)
MESSAGES = Table(
    Message,
    [
        "id",
        "public_id",
        "conversation",
        "customer",
        "channel",
        "kind",
        "direction",
        "sender",
        "author",
        "text",
        "html",
        "address",
        "provider_id",
        "status",
        "status_reason",
        "attempts",
        "metadata",
        "created_at",
        "status_changed_at",
        "send_at",
    ],
)
NOTES_TABLE = Table(CustomerNote, ["id", "customer", "author", "text", "created_at"])
LOADED_MODELS: list[type[models.Model]] = [Customer, Identity, Conversation, Message, CustomerNote]


def loaded_scale() -> tuple[int, int]:
    """(customers, messages) currently in the database."""
    return Customer.objects.count(), Message.objects.count()


def is_loaded(*, customers: int, messages: int) -> bool:
    return (
        Operator.objects.filter(username=BENCH_OPERATOR).exists()
        and Customer.objects.count() == customers
        and Message.objects.count() == messages
    )


def flush() -> None:
    """Empty every table (PostgreSQL: TRUNCATE); the bench database holds nothing else."""
    call_command("flush", interactive=False, verbosity=0)


def create_fixtures(rng: random.Random) -> Fixtures:
    """Teams, simulated channels and operators; found again (not duplicated) by a second load."""
    teams = [Team.objects.get_or_create(name=name)[0] for name in TEAMS]
    channels: dict[str, Channel] = {}
    for team in teams:
        for medium in TEAMS[team.name]:
            channels[medium], _ = Channel.objects.get_or_create(
                kind="simulator",
                medium=medium,
                name=f"{team.name} {medium} (bench)",
                defaults={
                    "team": team,
                    "settings": {"medium": medium, "secret": uuid.UUID(int=rng.getrandbits(128)).hex},
                },
            )
    operators: list[Operator] = []
    for n in range(OPERATORS):
        operator, created = Operator.objects.get_or_create(
            username=BENCH_OPERATOR if n == 0 else f"bench-agent-{n}",
            defaults={
                "display_name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)[0]}.",
                "presence": rng.choice(list(Operator.Presence.values)),
            },
        )
        if created:
            operator.set_unusable_password()
            operator.save(update_fields=["password"])
            # The measured operator works in two of the three teams; the others in one or two.
            operator.teams.set(teams[:2] if n == 0 else rng.sample(teams, rng.choice([1, 1, 2])))
        operators.append(operator)
    team_operators: dict[int, list[int]] = {team.pk: [] for team in teams}
    for operator_id, team_id in Operator.teams.through.objects.filter(operator__in=operators).values_list(
        "operator_id", "team_id"
    ):
        team_operators[team_id].append(operator_id)
    return Fixtures(
        teams=teams,
        operators=operators,
        team_operators=team_operators,
        channels=channels,
        bench_operator=operators[0],
    )


def message_counts(rng: random.Random, customers: int, messages: int) -> list[int]:
    """Messages per customer: at least one, heavy-tailed (a few customers have hundreds), summing to ``messages``."""
    if messages < customers:
        raise ValueError("need at least one message per customer")
    weights = [min(rng.paretovariate(1.4), 400.0) for _ in range(customers)]
    scale = (messages - customers) / sum(weights)
    counts = [1 + int(w * scale) for w in weights]
    short = messages - sum(counts)
    for i in rng.choices(range(customers), k=short):
        counts[i] += 1
    return counts


def _phone(n: int) -> str:
    return f"+1{200 + n % 700:03d}{n % 10_000_000:07d}"


class Generator:
    """Rows for one customer at a time, with ids handed out from each table's next free id."""

    def __init__(self, rng: random.Random, fixtures: Fixtures, now: datetime) -> None:
        self.rng = rng
        self.fixtures = fixtures
        self.now = now
        self.next_id = {
            model: (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1
            for model in (Customer, Identity, Conversation, Message, CustomerNote)
        }
        self.media = list(MEDIUM_WEIGHTS)
        self.medium_weights = list(MEDIUM_WEIGHTS.values())
        self.operator_ids = [op.pk for op in fixtures.operators]

    def take(self, model: type[models.Model]) -> int:
        value = self.next_id[model]
        self.next_id[model] = value + 1
        return value

    def customer(self, chunk: Chunk, count: int) -> None:
        rng = self.rng
        customer_id = self.take(Customer)
        # Open conversations are recent; resolved history reaches back a year and more.
        last_status = rng.choices(["resolved", "open", "snoozed"], weights=[80, 14, 6])[0]
        end = self.now - timedelta(minutes=rng.expovariate(1 / (60 * 24 * (3 if last_status != "resolved" else 90))))
        conversations = 1 + min(rng.choice([0, 0, 1, 1, 2, 3]), (count - 1) // 4)
        # Timestamps backwards from the last activity: minutes apart in a conversation, weeks between.
        times: list[datetime] = []
        at = end
        for _ in range(count):
            times.append(at)
            at -= timedelta(seconds=30 + rng.expovariate(1 / 900))
        times.reverse()
        bounds = sorted(rng.sample(range(1, count), conversations - 1)) if conversations > 1 else []
        spans = list(zip([0, *bounds], [*bounds, count], strict=True))
        gap = timedelta(0)
        shifted: list[datetime] = list(times)
        for start, stop in reversed(spans):
            for i in range(start, stop):
                shifted[i] = times[i] - gap
            gap += timedelta(days=rng.expovariate(1 / 30))
        created = shifted[0] - timedelta(minutes=rng.randint(0, 60))

        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" if rng.random() < 0.85 else ""
        attributes: dict[str, Any] = {}
        if rng.random() < 0.5:
            attributes = {"plan": rng.choice(PLANS), "orders": rng.randint(0, 40)}
        customer = [
            customer_id,
            name,
            rng.choice(LANGUAGES),
            attributes,
            rng.sample(LABELS, rng.choice([0, 0, 0, 1])),
            rng.random() < 0.02,
            "",  # contact_kind, filled below from the identities as the product keeps it
            "",  # contact
            "",  # external_id: none, as for customers no CRM has pushed
            None,
            created,
            shifted[-1],
        ]

        # Identities: the first conversation's medium decides the first one; a second or third often.
        addresses: dict[str, str] = {}
        shown: list[Identity] = []
        media = [rng.choices(self.media, self.medium_weights)[0] for _ in spans]
        for medium in [*media, *rng.sample(self.media, rng.choice([0, 0, 1, 2]))]:
            kind = MEDIUM_IDENTITY[medium]
            if kind in addresses or len(addresses) == 3:
                continue
            if kind == "phone":
                # One customer in a hundred has a number that looks like another customer's
                # (same last nine digits, another country code), so the profile suggests a merge.
                value = display = _phone(customer_id)
                if rng.random() < 0.01:
                    value = display = "+7" + _phone(customer_id - 1)[2:]
            elif kind == "email":
                value = display = f"customer{customer_id}@example.com"
            elif kind == "telegram":
                value, display = str(5_000_000_000 + customer_id), f"@user{customer_id}"
            elif kind == "webchat":
                value, display = uuid.UUID(int=rng.getrandbits(128)).hex, ""
            else:
                value, display = f"{kind}-{customer_id}", ""
            addresses[kind] = value
            identity = (self.take(Identity), customer_id, kind, value, display, rng.random() < 0.3, created)
            chunk.identities.append(identity)
            shown.append(Identity(pk=identity[0], kind=kind, value=value, display=display, verified=identity[5]))
        customer[6], customer[7] = best_contact(shown)
        chunk.customers.append(tuple(customer))

        for number, ((start, stop), medium) in enumerate(zip(spans, media, strict=True)):
            last = number == len(spans) - 1
            self.conversation(
                chunk,
                customer_id=customer_id,
                status=last_status if last else "resolved",
                medium=medium,
                address=addresses.get(MEDIUM_IDENTITY[medium], ""),
                times=shifted[start:stop],
            )

        if rng.random() < 0.05:
            for _ in range(rng.randint(1, 2)):
                chunk.notes.append(
                    (
                        self.take(CustomerNote),
                        customer_id,
                        rng.choice(self.operator_ids),
                        rng.choice(NOTES),
                        shifted[-1] - timedelta(days=rng.random() * 30),
                    )
                )

    def conversation(
        self, chunk: Chunk, *, customer_id: int, status: str, medium: str, address: str, times: list[datetime]
    ) -> None:
        rng = self.rng
        channel = self.fixtures.channels[medium]
        team_id = channel.team_id
        assert team_id is not None
        candidates = self.fixtures.team_operators[team_id] or self.operator_ids
        assignee = rng.choice(candidates) if status != "open" or rng.random() < 0.7 else None
        conversation_id = self.take(Conversation)
        last_inbound = None
        preview = ""
        last_direction = ""
        for at in times:
            message_id = self.take(Message)
            kind = rng.choices(["message", "note", "activity", "call"], weights=[86, 5, 7, 2])[0]
            if kind in ("message", "call"):
                inbound = rng.random() < 0.55
                direction = "in" if inbound else "out"
                sender = "customer" if inbound else ("operator" if rng.random() < 0.8 else "bot")
                author = (assignee or rng.choice(candidates)) if sender == "operator" else None
                text = rng.choice(SENTENCES) if kind == "message" else ""
                state = (
                    "received" if inbound else rng.choices(["delivered", "read", "sent", "failed"], [60, 30, 8, 2])[0]
                )
                html = f"<p>{text}</p>" if medium == "email" and text else ""
                metadata: dict[str, Any] = {"duration": rng.randint(20, 900)} if kind == "call" else {}
                chunk.messages.append(
                    (
                        message_id,
                        uuid.UUID(int=rng.getrandbits(128), version=4),
                        conversation_id,
                        customer_id,
                        channel.pk,
                        kind,
                        direction,
                        sender,
                        author,
                        text,
                        html,
                        address,
                        f"bench-{message_id}",
                        state,
                        "Undeliverable" if state == "failed" else "",
                        0 if inbound else 1,
                        metadata,
                        at,
                        None if inbound else at + timedelta(seconds=rng.randint(1, 120)),
                        None,  # send_at: nothing scheduled
                    )
                )
                last_direction = direction
                if inbound:
                    last_inbound = at
                preview = text or preview
            else:
                note = kind == "note"
                chunk.messages.append(
                    (
                        message_id,
                        uuid.UUID(int=rng.getrandbits(128), version=4),
                        conversation_id,
                        customer_id,
                        None,
                        kind,
                        "internal",
                        "operator" if note else "system",
                        rng.choice(candidates) if note else None,
                        rng.choice(NOTES) if note else rng.choice(ACTIVITIES),
                        "",
                        "",
                        "",
                        "",
                        "",
                        0,
                        {},
                        at,
                        None,
                        None,
                    )
                )
        last = times[-1]
        chunk.conversations.append(
            (
                conversation_id,
                customer_id,
                team_id,
                status,
                "bot" if status == "open" and channel.medium == "webchat" and rng.random() < 0.3 else "human",
                assignee,
                rng.choices([0, 1, 2, 3], weights=[10, 70, 15, 5])[0],
                rng.sample(LABELS, rng.choice([0, 0, 1, 2])),
                rng.choice(SENTENCES)[:60] if medium == "email" else "",
                channel.pk,
                last,
                last_inbound,
                preview[:160],
                last_inbound if status == "open" and last_direction == "in" else None,
                self.now + timedelta(hours=rng.randint(1, 7 * 24)) if status == "snoozed" else None,
                last + timedelta(minutes=rng.randint(1, 600)) if status == "resolved" else None,
                times[0],
                rng.randint(1, 30),
            )
        )


def chunks(generator: Generator, counts: list[int]) -> Iterator[tuple[int, Chunk]]:
    for start in range(0, len(counts), CHUNK):
        chunk = Chunk()
        for count in counts[start : start + CHUNK]:
            generator.customer(chunk, count)
        yield start + len(counts[start : start + CHUNK]), chunk


@dataclass(frozen=True)
class LoadReport:
    customers: int
    conversations: int
    messages: int
    seconds: float


Progress = Callable[[int, int, int], None]


def load(*, customers: int, messages: int, seed: int = 1, progress: Progress | None = None) -> LoadReport:
    """Generate and insert the data set; returns what was written. Adds to whatever is there."""
    started = time.monotonic()
    rng = random.Random(seed)
    counts = message_counts(rng, customers, messages)
    written_messages = 0
    conversations = 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # Check foreign keys as each COPY ends, not all at once at commit.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        fixtures = create_fixtures(rng)
        generator = Generator(rng, fixtures, timezone.now())
        with indexes_deferred(LOADED_MODELS):
            for done, chunk in chunks(generator, counts):
                CUSTOMERS.write(chunk.customers)
                IDENTITIES.write(chunk.identities)
                CONVERSATIONS.write(chunk.conversations)
                MESSAGES.write(chunk.messages)
                NOTES_TABLE.write(chunk.notes)
                written_messages += len(chunk.messages)
                conversations += len(chunk.conversations)
                if progress is not None:
                    progress(done, customers, written_messages)
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), LOADED_MODELS):
                cursor.execute(sql)
    analyze()
    return LoadReport(
        customers=customers,
        conversations=conversations,
        messages=written_messages,
        seconds=time.monotonic() - started,
    )


@contextlib.contextmanager
def indexes_deferred(models_: Sequence[type[models.Model]]) -> Iterator[None]:
    """Drop the tables' secondary indexes, unique and foreign-key constraints; rebuild them at the end.

    Building an index over a million rows once is several times cheaper than maintaining it row by
    row, and one validating join per foreign key beats a trigger per row (what pg_restore does).
    Primary keys stay: other tables' foreign keys point at them. PostgreSQL only; DDL is transactional.
    """
    if connection.vendor != "postgresql":
        yield
        return
    tables = [model._meta.db_table for model in models_]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('u', 'f')",
            [tables],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
            " WHERE indrelid = ANY(%s::regclass[]) AND NOT indisprimary"
            " AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE contype IN ('u', 'p'))",
            [tables],
        )
        indexes = cursor.fetchall()
        qn = connection.ops.quote_name
        for table, name, _ in constraints:
            cursor.execute(f"ALTER TABLE {qn(table)} DROP CONSTRAINT {qn(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {qn(name)}")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        for table, name, definition in constraints:
            cursor.execute(f"ALTER TABLE {qn(table)} ADD CONSTRAINT {qn(name)} {definition}")


def analyze() -> None:
    """Fresh planner statistics (and, outside a transaction on PostgreSQL, a vacuumed visibility map)."""
    tables = [model._meta.db_table for model in LOADED_MODELS]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ", ".join(connection.ops.quote_name(t) for t in tables)
            cursor.execute(f"VACUUM (ANALYZE) {names}" if not connection.in_atomic_block else f"ANALYZE {names}")
        else:
            cursor.execute("ANALYZE")
