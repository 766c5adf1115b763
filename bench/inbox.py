"""How fast the operator's pages are on a big inbox: ``python -m bench.inbox``.

Loads 100 000 customers and 1 000 000 messages into a dedicated PostgreSQL database (once; reused
while the scale matches), then times the pages an operator waits for, through the code the product
runs: the selectors (``inbox.selectors.conversations``, ``inbox.selectors.customers``) and the rendered views through
``django.test.Client`` logged in as an operator of two teams. Each page is sampled over many ids and
cursors after a warm-up; the query count of every sample is captured. Prints ONE JSON line on stdout
(progress goes to stderr):

    {"bench": "inbox", "customers": ..., "pages": {"inbox_all": {"selector": {"p50_ms": ...,
     "p95_ms": ..., "queries": 1}, "view": {...}}, ...}, "ok": true}

The database is ``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/bench``); never
the product's ``DATABASE_URL``, because ``--reset`` empties the database. ``--compare N`` also runs
the bench at N customers (in ``<database>_<N>``) and checks that no page's query count grows with
the data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench"
TARGET_P95_MS = 100.0


def _setup_django(database_url: str) -> None:
    if not database_url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            f"bench.inbox measures PostgreSQL, the production database; {database_url!r} is not one.\n"
            "Set BENCH_DATABASE_URL=postgres://USER@HOST:PORT/DBNAME (a database the bench may empty)."
        )
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Production-like: no debug template engine, no debug query log.
    os.environ.setdefault("DEBUG", "0")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _create_database(database_url: str) -> None:
    """Create the bench database when missing (connecting to the server's ``postgres`` database)."""
    import psycopg
    from django.db import connection
    from psycopg import sql

    params = connection.get_connection_params()
    name = connection.settings_dict["NAME"]
    params.pop("dbname", None)
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


class ProgressLine:
    """One self-rewriting line on stderr."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int, messages: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5 and done < total:
            return
        self.last = now
        elapsed = now - self.started
        rate = messages / elapsed if elapsed else 0.0
        line = f"loading: {done:,}/{total:,} customers, {messages:,} messages, {rate:,.0f} msg/s, {elapsed:.0f}s"
        if done == total:
            line += "; building indexes, vacuum, analyze..."
        self.say(line)

    def say(self, line: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self, line: str) -> None:
        self.say(line)
        if self.tty:
            sys.stderr.write("\n")


def ensure_loaded(*, customers: int, messages: int, reset: bool) -> dict[str, Any]:
    """Migrate, then load unless the database already holds exactly this scale."""
    from django.core.management import call_command

    from bench import dataset  # after django.setup() in main()
    from inbox.models import Operator  # after django.setup() in main()

    call_command("migrate", verbosity=0)
    if not reset and dataset.is_loaded(customers=customers, messages=messages):
        print(f"reusing the loaded data: {customers:,} customers, {messages:,} messages", file=sys.stderr)
        return {"load_s": None, "reused": True}
    have_customers, have_messages = dataset.loaded_scale()
    if have_customers and not Operator.objects.filter(username=dataset.BENCH_OPERATOR).exists():
        sys.exit("this database holds data the bench did not load; point BENCH_DATABASE_URL at another one")
    if have_customers or have_messages:
        print(f"emptying the database ({have_customers:,} customers, {have_messages:,} messages)", file=sys.stderr)
    dataset.flush()
    progress = ProgressLine()
    report = dataset.load(customers=customers, messages=messages, progress=progress)
    progress.done(f"loaded {report.customers:,} customers, {report.messages:,} messages in {report.seconds:.1f}s")
    return {"load_s": round(report.seconds, 1), "reused": False}


# -- measuring --------------------------------------------------------------------------------------


def steady_queries(numbers: dict[str, Any]) -> int:
    """The queries a page costs once the process's small caches are warm: the fewest of its samples.
    A cache with a time limit (the SLA policies' 5 s, desk/services.py) refilled during the samples
    adds a query to one of them, whatever the data."""
    return int(numbers.get("queries_min", numbers["queries"]))


@dataclass
class Samples:
    ms: list[float]
    queries: list[int]

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.ms)
        result: dict[str, Any] = {
            "p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
            "queries": max(self.queries),
        }
        if min(self.queries) != max(self.queries):
            result["queries_min"] = min(self.queries)
        return result


def measure(call: Callable[[Any], Any], cases: Sequence[Any], *, warmup: int) -> Samples:
    """Time ``call(case)`` for every case (after ``warmup`` untimed calls), counting its queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for case in list(cases)[:warmup]:
        call(case)
    samples = Samples(ms=[], queries=[])
    for case in cases:
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            call(case)
            elapsed = time.perf_counter() - started
        samples.ms.append(elapsed * 1000)
        samples.queries.append(len(captured.captured_queries))
    return samples


def _cycle(items: Sequence[Any], n: int) -> list[Any]:
    return [items[i % len(items)] for i in range(n)] if items else []


class Pages:
    """The pages and the cases (operators, cursors, ids) each is sampled over."""

    def __init__(self, *, samples: int, seed: int = 7) -> None:
        import random

        from django.test import Client

        from bench import dataset  # after django.setup() in main()
        from inbox.models import Conversation, Message, Operator  # after django.setup() in main()
        from inbox.selectors import cursors  # after django.setup() in main()
        from inbox.selectors.conversations import (  # after django.setup() in main()
            tab_filter,
            visible_conversations,
        )

        self.rng = random.Random(seed)
        self.samples = samples
        self.operator = Operator.objects.get(username=dataset.BENCH_OPERATOR)
        self.client = Client()
        self.client.force_login(self.operator)
        visible = visible_conversations(self.operator)
        ids = list(visible.order_by("-last_message_at", "-pk").values_list("last_message_at", "pk"))
        # Deep pages: cursors anywhere past the first few pages of the "all" tab.
        deep = ids[200:] or ids
        self.deep_cursors = [cursors.encode_cursor(*self.rng.choice(deep)) for _ in range(samples)]
        mine = list(
            visible.filter(tab_filter("mine", self.operator))
            .order_by("-last_message_at", "-pk")
            .values_list("last_message_at", "pk")
        )
        mine_deep = mine[50:] or mine or ids
        self.mine_cursors = [cursors.encode_cursor(*self.rng.choice(mine_deep)) for _ in range(samples)]
        # Threads and profiles of the customers with the most messages (the top 2 %), visible to the operator.
        from django.db.models import Count

        heavy = max(samples, Conversation.objects.count() // 50)
        top_customers = list(
            Message.objects.values("customer_id")
            .annotate(n=Count("pk"))
            .order_by("-n")
            .values_list("customer_id", flat=True)[: heavy * 2]
        )
        conversations = dict(
            visible.filter(customer_id__in=top_customers)
            .order_by("customer_id", "-last_message_at")
            .values_list("customer_id", "pk")
        )
        heavy_ids = [(customer, conversations[customer]) for customer in top_customers if customer in conversations]
        self.rng.shuffle(heavy_ids)
        self.threads = _cycle(heavy_ids[:samples], samples)
        self.thread_messages = (
            round(
                statistics.mean(
                    Message.objects.filter(customer_id__in=[c for c, _ in self.threads])
                    .values("customer_id")
                    .annotate(n=Count("pk"))
                    .values_list("n", flat=True)
                )
            )
            if self.threads
            else 0
        )

    def run(self, *, warmup: int, only: set[str] | None = None) -> dict[str, Any]:
        """Measure every page (or those named in ``only``): ``{page: {"selector": {...}, "view": {...}}}``."""
        from django.urls import NoReverseMatch, reverse

        from inbox.selectors.conversations import (  # after django.setup() in main()
            Tab,
            customer_panel,
            inbox_counts,
            inbox_page,
            thread_page,
        )
        from inbox.selectors.customers import customer_for, customer_profile  # after django.setup() in main()

        op = self.operator
        first = [None] * self.samples
        conversations = [conversation for _, conversation in self.threads]
        customers = [customer for customer, _ in self.threads]

        def get(url: str, headers: dict[str, str] | None = None) -> Callable[[Any], Any]:
            def call(case: Any) -> Any:
                response = self.client.get(url.format(case), headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {url.format(case)} answered {response.status_code}")
                return response

            return call

        def listing(tab: Tab) -> Callable[[Any], Any]:
            return lambda cursor: inbox_page(operator=op, tab=tab, cursor=cursor)

        def thread(pk: int) -> Any:
            # What the thread view reads: the thread page and the customer panel beside it.
            page = thread_page(operator=op, conversation_id=pk)
            return page, customer_panel(operator=op, customer_id=page.conversation.customer_id)

        def profile(pk: int) -> Any:
            customer = customer_for(op, pk)
            return customer_profile(operator=op, customer=customer)

        try:
            profile_view: Callable[[Any], Any] | str = get(
                reverse("customers:profile", args=[0]).replace("/0/", "/{}/")
            )
        except NoReverseMatch:
            profile_view = "not routed (the customer pages are not included in config/urls.py)"
        htmx_thread = {"HX-Request": "true", "HX-Target": "thread-pane"}
        # name: (cases, {how: call}); "view" is what the operator waits for.
        specs: dict[str, tuple[list[Any], dict[str, Callable[[Any], Any] | str]]] = {
            "inbox_all": (first, {"selector": listing("all"), "view": get("/?tab=all")}),
            "inbox_all_deep": (self.deep_cursors, {"selector": listing("all"), "view": get("/?tab=all&cursor={}")}),
            "inbox_mine": (first, {"selector": listing("mine"), "view": get("/?tab=mine")}),
            "inbox_mine_deep": (
                self.mine_cursors,
                {"selector": listing("mine"), "view": get("/?tab=mine&cursor={}")},
            ),
            "inbox_unassigned": (first, {"selector": listing("unassigned"), "view": get("/?tab=unassigned")}),
            "inbox_counts": (first, {"selector": lambda _: inbox_counts(operator=op)}),
            "thread": (
                conversations,
                {"selector": thread, "view": get("/c/{}/", htmx_thread), "view_full_page": get("/c/{}/")},
            ),
            "profile": (customers, {"selector": profile, "view": profile_view}),
        }
        pages: dict[str, Any] = {}
        for name, (cases, calls) in specs.items():
            if only and name not in only:
                continue
            pages[name] = {
                how: call if isinstance(call, str) else measure(call, cases, warmup=warmup).summary()
                for how, call in calls.items()
            }
        return pages


def _verdict(pages: dict[str, Any]) -> tuple[bool, list[str]]:
    misses = []
    for name, page in pages.items():
        for how, numbers in page.items():
            if isinstance(numbers, dict) and numbers["p95_ms"] >= TARGET_P95_MS:
                misses.append(f"{name}.{how}")
    return not misses, misses


def _compare(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    """Run the bench at ``args.compare`` customers in a sibling database; returns its result line."""
    base, _, name = database_url.rpartition("/")
    small_customers = args.compare
    small_messages = max(small_customers, args.messages * small_customers // args.customers)
    env = {**os.environ, "BENCH_DATABASE_URL": f"{base}/{name}_{small_customers}"}
    command = [
        sys.executable,
        "-m",
        "bench.inbox",
        "--customers",
        str(small_customers),
        "--messages",
        str(small_messages),
        "--samples",
        str(min(args.samples, 50)),
    ]
    output = subprocess.run(
        command, cwd=ROOT, env=env, check=True, capture_output=False, stdout=subprocess.PIPE, text=True
    )
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200, help="timed samples per page (default 200)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--reset", action="store_true", help="reload even when the data is already there")
    parser.add_argument("--only", help="comma-separated page names to measure (default: all)")
    parser.add_argument(
        "--compare", type=int, metavar="CUSTOMERS", help="also run at this many customers and compare query counts"
    )
    args = parser.parse_args(argv)
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    _setup_django(database_url)
    _create_database(database_url)

    from inbox.models import Conversation  # after django.setup() in main()

    load = ensure_loaded(customers=args.customers, messages=args.messages, reset=args.reset)
    print("measuring...", file=sys.stderr)
    pages = Pages(samples=args.samples)
    result: dict[str, Any] = {
        "bench": "inbox",
        "customers": args.customers,
        "messages": args.messages,
        "conversations": Conversation.objects.count(),
        **load,
        "samples": args.samples,
        "thread_avg_messages": pages.thread_messages,
        "pages": pages.run(warmup=args.warmup, only=set(args.only.split(",")) if args.only else None),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    ok, misses = _verdict(result["pages"])
    if args.compare:
        small = _compare(args, database_url)
        grew = {
            f"{name}.{how}": [steady_queries(small["pages"][name][how]), steady_queries(numbers)]
            for name, page in result["pages"].items()
            for how, numbers in page.items()
            if isinstance(numbers, dict) and steady_queries(small["pages"][name][how]) != steady_queries(numbers)
        }
        result["compare"] = {
            "customers": small["customers"],
            "queries": {
                name: {how: numbers["queries"] for how, numbers in page.items() if isinstance(numbers, dict)}
                for name, page in small["pages"].items()
            },
            "query_counts_grew": grew,
        }
        ok = ok and not grew
    result["target_p95_ms"] = TARGET_P95_MS
    result["misses"] = misses
    result["ok"] = ok
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
