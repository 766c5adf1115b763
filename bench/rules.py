"""What automation rules cost the worker: ``python -m bench.rules``.

Customer messages arrive as production's do, at a steady rate (default 50/s, on 50 conversations):
each is stored as a provider's webhook event (``record_inbound_event``, what the webhook view
does) and the worker makes it a message (``process_inbound_event``: parse, customer, conversation,
message, the bot's look) — first with no rules, then with 100 enabled "customer message received"
rules that look for words no message carries (what looking costs), then 100 rules of which exactly
one matches each message and sets its priority (each looks for its own word; every message carries
one of the words). A real Celery worker (started here, on its own queue) does both.
For each phase it measures the worker's CPU time (its processes, from /proc) from the first event
until every event is processed and every message's rules have run, and the sending process's own
CPU, per message, and prints ONE JSON line:

    {"bench": "rules", "rate": 50, "rules": 100, "messages": ..., "worker_cpu_ms_per_message":
     {"without": ..., "with": ...}, "sender_cpu_ms_per_message": {...}, "ran": ..., "ok": true}

The database is ``BENCH_RULES_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/bench_rules``,
created when missing, its conversations and rules emptied at the start), never the product's. Redis
is ``REDIS_URL`` (required: the worker's broker). ``--rate``, ``--seconds``, ``--rules`` and
``--concurrency`` (the worker's processes) change the load. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_rules"
QUEUE = "bench-rules"
TICK = os.sysconf("SC_CLK_TCK")


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["PARLEY_QUEUE"] = QUEUE
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("PARLEY_DEMO", "0")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _tree(pid: int) -> list[int]:
    """The process and its descendants (Celery's prefork children)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += _tree(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU of the process tree so far."""
    total = 0
    for each in _tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def _start_worker(concurrency: int) -> subprocess.Popen[bytes]:
    from config.celery import app  # after django.setup()

    hostname = f"bench-rules@{socket.gethostname()}"
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "WARNING"),
            *("--concurrency", str(concurrency), "--hostname", hostname, "--queues", QUEUE),
            *("--without-mingle", "--without-gossip"),
        ],
        cwd=ROOT,
        env={**os.environ},
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.control.ping(destination=[hostname], timeout=0.5):
            return worker
    worker.terminate()
    sys.exit("the worker did not start")


def phase(
    args: argparse.Namespace, worker: subprocess.Popen[bytes], channel: Any, tag: str, expect_runs: bool
) -> dict[str, Any]:
    """Send ``rate * seconds`` customer messages; the worker's and the sender's CPU per message."""
    from desk.models import RuleRun
    from inbox.models import InboundEvent
    from inbox.services.inbound import record_inbound_event

    total = int(args.rate * args.seconds)
    runs_before = RuleRun.objects.count()
    worker_before, sender_before = cpu_seconds(worker.pid), time.process_time()
    started = time.monotonic()
    for i in range(total):
        time.sleep(max(0.0, started + i / args.rate - time.monotonic()))
        body = {"id": f"{tag}-{i}", "from": f"+1500555{1000 + i % 50:04d}"}
        body["text"] = f"Hello, about word{i % args.rules} and my order"
        record_inbound_event(
            channel=channel, endpoint="inbound", dedupe_key=f"{tag}-{i}", body=json.dumps(body).encode()
        )
    sent_in = time.monotonic() - started
    sender = time.process_time() - sender_before
    deadline = time.monotonic() + 180
    pending = InboundEvent.objects.filter(dedupe_key__startswith=f"{tag}-", status=InboundEvent.Status.PENDING)
    ran = RuleRun.objects.count() - runs_before
    while (pending.exists() or (expect_runs and ran < total)) and time.monotonic() < deadline:
        time.sleep(0.2)
        ran = RuleRun.objects.count() - runs_before
    time.sleep(1.0)  # the last task's own bookkeeping
    worker_cpu = cpu_seconds(worker.pid) - worker_before
    return {
        "messages": total,
        "processed": InboundEvent.objects.filter(dedupe_key__startswith=f"{tag}-", status="processed").count(),
        "sent_in_s": round(sent_in, 2),
        "ran": ran,
        "drained_in_s": round(time.monotonic() - started, 2),
        "worker_cpu_ms_per_message": round(worker_cpu * 1000 / total, 3),
        "sender_cpu_ms_per_message": round(sender * 1000 / total, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="customer messages per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    if not os.environ.get("REDIS_URL"):
        sys.exit("set REDIS_URL: the worker needs a broker")
    _setup_django(os.environ.get("BENCH_RULES_DATABASE_URL", DEFAULT_DATABASE_URL))
    from bench.inbox import _create_database  # the same helper

    _create_database(os.environ["DATABASE_URL"])
    from django.core.management import call_command

    from customers.models import Customer
    from desk.models import Rule, RuleRun
    from inbox.models import Conversation, Team
    from inbox.services import channels

    call_command("migrate", verbosity=0)
    RuleRun.objects.all().delete()
    Rule.objects.all().delete()
    Conversation.objects.all().delete()
    Customer.objects.all().delete()
    team, _created = Team.objects.get_or_create(name="Bench")
    channel = channels.create_channel(
        kind="simulator", name=f"Bench SMS {time.time_ns()}", team=team, channel_settings={"medium": "sms"}
    )
    worker = _start_worker(args.concurrency)
    try:
        time.sleep(1.0)
        without = phase(args, worker, channel, f"a{time.time_ns()}", expect_runs=False)

        def make_rules(word: str) -> None:
            Rule.objects.all().delete()
            Rule.objects.bulk_create(
                Rule(
                    name=f"Word {n}",
                    team=team if n % 2 else None,
                    when=Rule.When.INBOUND,
                    position=n,
                    conditions={"text_contains": f"{word}{n} "},
                    actions=[{"action": "priority", "priority": n % 4}],
                )
                for n in range(args.rules)
            )

        # The rules look for words no message carries: what looking costs.
        make_rules("absent")
        looking = phase(args, worker, channel, f"c{time.time_ns()}", expect_runs=False)
        # Every message carries one rule's word: looking, and one rule acting on each message.
        make_rules("word")
        with_rules = phase(args, worker, channel, f"b{time.time_ns()}", expect_runs=True)
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    print(
        json.dumps(
            {
                "bench": "rules",
                "rate": args.rate,
                "seconds": args.seconds,
                "rules": args.rules,
                "worker_concurrency": args.concurrency,
                "worker_cpu_ms_per_message": {
                    "without": without["worker_cpu_ms_per_message"],
                    "rules_none_match": looking["worker_cpu_ms_per_message"],
                    "with": with_rules["worker_cpu_ms_per_message"],
                },
                "sender_cpu_ms_per_message": {
                    "without": without["sender_cpu_ms_per_message"],
                    "with": with_rules["sender_cpu_ms_per_message"],
                },
                "without": without,
                "rules_none_match": looking,
                "with": with_rules,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "ok": with_rules["ran"] == with_rules["messages"]
                and without["processed"] == without["messages"] == with_rules["processed"] == looking["processed"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
