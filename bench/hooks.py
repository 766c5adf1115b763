"""How soon webhooks out reach a receiver after the change commits: ``python -m bench.hooks``.

Writes changes through the product's services at a steady rate (default 20 events/s: a customer's
message and an operator's note, alternately, on 20 conversations), each in its own transaction, to
a subscription for every event type whose URL is a local HTTP receiver. A real Celery worker (started
here, on its own queue) delivers them. For every delivery it measures the time from the commit of
the change to the receiver getting the signed request, and prints ONE JSON line:

    {"bench": "hooks", "rate": 20, "events": 600, "delivered": 600, "lost": 0, "p50_ms": ...,
     "p99_ms": ..., "max_ms": ..., "target_p99_ms": 1000, "ok": true}

The database is ``BENCH_HOOKS_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/bench_hooks``,
created when missing; its conversations and deliveries are emptied at the start), never the
product's. Redis is ``REDIS_URL`` (required: the worker's broker). ``--rate``, ``--seconds``,
``--concurrency`` (the worker's processes) change the load.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_hooks"
TARGET_P99_MS = 1000.0
QUEUE = "bench-hooks"


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["PARLEY_QUEUE"] = QUEUE
    os.environ["PARLEY_HOOKS_ALLOW_PRIVATE"] = "1"  # the receiver is on 127.0.0.1
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("PARLEY_DEMO", "0")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


class Receiver:
    """Records when each webhook-id first arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.requests = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                now = time.time()
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    outer.requests += 1
                    outer.arrived.setdefault(self.headers["webhook-id"], now)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _start_worker(concurrency: int) -> subprocess.Popen[bytes]:
    from config.celery import app  # after django.setup()

    hostname = f"bench-hooks@{socket.gethostname()}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel",
            "WARNING",
            "--concurrency",
            str(concurrency),
            "--hostname",
            hostname,
            "--queues",
            QUEUE,
            "--without-mingle",
            "--without-gossip",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    if not os.environ.get("REDIS_URL"):
        sys.exit("set REDIS_URL: the worker needs a broker")
    _setup_django(os.environ.get("BENCH_HOOKS_DATABASE_URL", DEFAULT_DATABASE_URL))
    from bench.inbox import _create_database  # the same helper

    _create_database(os.environ["DATABASE_URL"])
    from django.core.management import call_command
    from django.db import transaction

    from customers.models import Customer
    from hooks import services
    from hooks.models import Delivery, Subscription
    from inbox.models import Conversation, Operator, Team
    from inbox.services import channels
    from inbox.services.inbound import receive_message
    from inbox.services.outbound import add_note
    from inbox.transport import InboundMessage

    call_command("migrate", verbosity=0)
    Delivery.objects.all().delete()
    Subscription.objects.all().delete()
    Conversation.objects.all().delete()
    Customer.objects.all().delete()
    team, _created = Team.objects.get_or_create(name="Bench")
    operator = Operator.objects.filter(username="bench-hooks").first() or Operator.objects.create_user(
        "bench-hooks", "bench@example.test", "x", is_staff=True
    )
    channel = channels.create_channel(
        kind="simulator", name=f"Bench SMS {time.time_ns()}", team=team, channel_settings={"medium": "sms"}
    )
    receiver = Receiver()
    services.create_subscription(name="bench", url=receiver.url, events=list(services.EVENT_NAMES), team=None, by=None)
    numbers = [f"+1500555{1000 + n:04d}" for n in range(20)]
    threads = [
        receive_message(channel=channel, inbound=InboundMessage(provider_id=f"seed-{n}", address=a, text="hi"))
        for n, a in enumerate(numbers)
    ]
    worker = _start_worker(args.concurrency)
    try:
        time.sleep(1.0)  # the seed's deliveries go out first
        committed: dict[str, float] = {}
        total = int(args.rate * args.seconds)
        started = time.monotonic()
        last_id = Delivery.objects.order_by("-id").values_list("id", flat=True).first() or 0
        for i in range(total):
            time.sleep(max(0.0, started + i / args.rate - time.monotonic()))
            message = threads[i % len(threads)]
            with transaction.atomic():
                if i % 2:
                    add_note(conversation=message.conversation, text=f"note {i}", by=operator)
                else:
                    receive_message(
                        channel=channel,
                        inbound=InboundMessage(provider_id=f"m-{i}", address=numbers[i % len(numbers)], text="x"),
                    )
            at = time.time()
            for pk, event_id in Delivery.objects.filter(id__gt=last_id).values_list("id", "event_id"):
                committed[event_id] = at
                last_id = max(last_id, pk)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(committed) <= set(receiver.arrived):
            time.sleep(0.2)
        latencies = sorted((receiver.arrived[e] - t) * 1000 for e, t in committed.items() if e in receiver.arrived)
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    lost = len(committed) - len(latencies)

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else None

    p99 = pct(0.99)
    print(
        json.dumps(
            {
                "bench": "hooks",
                "rate": args.rate,
                "seconds": args.seconds,
                "events": len(committed),
                "delivered": len(latencies),
                "lost": lost,
                "requests": receiver.requests,
                "p50_ms": pct(0.5),
                "p99_ms": p99,
                "max_ms": round(latencies[-1], 1) if latencies else None,
                "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
                "target_p99_ms": TARGET_P99_MS,
                "worker_concurrency": args.concurrency,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "ok": lost == 0 and p99 is not None and p99 <= TARGET_P99_MS,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
