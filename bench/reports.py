"""How fast ``/reports/`` answers on a long history: ``python -m bench.reports``.

Loads 10 000 000 messages (1 000 000 customers; ``--messages``, ``--customers``) with the COPY
loader of :mod:`bench.dataset` into a dedicated PostgreSQL database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/bench_reports``; once, reused while the scale matches), builds
the report rollups with ``manage.py reports rebuild`` (timed; skipped when they are there, unless
``--rebuild``), then requests ``/reports/`` through ``django.test.Client`` as an operator of one team
(Support, the biggest) for each period: the first request (cold: a new database connection, nothing
cached in the process) and ``--samples`` more (warm). Prints one JSON line per period on stdout:

    {"bench": "reports", "days": 7, "messages": ..., "first_ms": ..., "p50_ms": ..., "p95_ms": ...,
     "queries": ..., "target_p95_ms": 150, "ok": true, "loadavg_1m": ...}

Never point it at the product's database: ``--reset`` empties it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.inbox import Samples, _create_database, _setup_django, ensure_loaded

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_reports"
TARGET_P95_MS = 150.0
OPERATOR = "bench-reports"


def _operator() -> Any:
    """An operator of the Support team only (created once)."""
    from inbox.models import Operator, Team  # after django.setup() in main()

    operator, created = Operator.objects.get_or_create(username=OPERATOR, defaults={"display_name": "Reports bench"})
    if created:
        operator.set_unusable_password()
        operator.save(update_fields=["password"])
        operator.teams.set([Team.objects.get(name="Support")])
    return operator


def _rebuild(force: bool) -> float | None:
    from django.core.management import call_command

    from reports.models import DailyChannelStats  # after django.setup() in main()

    if DailyChannelStats.objects.exists() and not force:
        print("reusing the rollups (--rebuild to build them again)", file=sys.stderr)
        return None
    print("building the rollups: manage.py reports rebuild ...", file=sys.stderr)
    started = time.monotonic()
    call_command("reports", "rebuild", verbosity=2)
    return round(time.monotonic() - started, 1)


def _measure(days: int, samples: int) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(_operator())
    url = f"/reports/?days={days}"

    def get() -> tuple[float, int]:
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
        return elapsed, len(captured.captured_queries)

    connection.close()  # the first request opens its own connection, as a fresh web process would
    first, _ = get()
    timed = Samples(ms=[], queries=[])
    for _ in range(samples):
        ms, queries = get()
        timed.ms.append(ms)
        timed.queries.append(queries)
    return {"first_ms": round(first, 1), **timed.summary()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, help="default: a tenth of --messages")
    parser.add_argument("--samples", type=int, default=30, help="warm requests per period (default 30)")
    parser.add_argument("--periods", default="7,30,90,365")
    parser.add_argument("--reset", action="store_true", help="reload even when the data is already there")
    parser.add_argument("--rebuild", action="store_true", help="build the rollups again even when they are there")
    args = parser.parse_args(argv)
    if args.samples < 20:
        parser.error("--samples: at least 20, for a p95")
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    _setup_django(database_url)
    _create_database(database_url)
    customers = args.customers or max(1, args.messages // 10)

    from inbox.models import Conversation  # after django.setup() in main()

    load = ensure_loaded(customers=customers, messages=args.messages, reset=args.reset)
    rebuild_s = _rebuild(args.reset or args.rebuild)
    conversations = Conversation.objects.count()
    for days in (int(value) for value in args.periods.split(",")):
        numbers = _measure(days, args.samples)
        result = {
            "bench": "reports",
            "days": days,
            "messages": args.messages,
            "customers": customers,
            "conversations": conversations,
            **load,
            "rebuild_s": rebuild_s,
            "samples": args.samples,
            **numbers,
            "target_p95_ms": TARGET_P95_MS,
            "ok": numbers["p95_ms"] <= TARGET_P95_MS,
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
