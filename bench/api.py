"""How fast the API answers: ``python -m bench.api``.

Starts its own Parley on loopback, on PostgreSQL and Redis like production: one web process
(Daphne) and one worker (Celery, prefork, concurrency 2). Loads one team with ``--tokens``
operators (default 10), each with an API token, and ``--conversations`` customers who wrote on a
simulated SMS line. Then, from this process (aiohttp, the same ten tokens in turn):

1. closed loop (``--concurrency`` requests in flight, ``--closed-seconds``): the throughput of
   ``/bench/trivial/`` (a view returning "ok" through the same middleware on the same server) and
   of ``GET /api/v1/conversations`` (a page of 25, token checked, rate-counted), and their ratio;
2. open loop at increasing rates: reads (``--read-rates``) and replies (``--reply-rates``,
   ``POST /api/v1/conversations/{id}/messages`` with an ``Idempotency-Key``, through the outbox:
   the worker delivers them), each stage ``--seconds`` long: p50/p99 of the answers and errors.
   Before each stage the bench waits until the worker has delivered every queued reply
   (``drained_s`` in the stage's result), so that a stage does not pay for the previous one.

Targets (issue 19): reads ≥ 0.5 of the trivial view; replies p99 ≤ 100 ms at 20/s. The rate
limit is set far above the load (``API_RATE_LIMIT=1000000/60``) so that its counter still runs.
Prints ONE JSON line; progress goes to stderr. The database (``BENCH_API_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/bench_api``) is dropped and created again on each run.
A short smoke run: ``python -m bench.api --conversations 100 --seconds 2 --closed-seconds 2
--read-rates 20 --reply-rates 20``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import cpu_seconds, free_port, recreate_database, wait_http

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_api"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"


def log(*parts: Any) -> None:
    print("[bench.api]", *parts, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[rank], 1)


def environment(args: argparse.Namespace, var_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "PARLEY_CHANNEL_PREFIX": "bench-api",
        "PARLEY_QUEUE": "bench-api",
        "PARLEY_VAR_DIR": str(var_dir),
        # The product's URLs plus /bench/trivial/ (bench/ingest_urls.py).
        "DJANGO_SETTINGS_MODULE": "bench.ingest_settings",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "API_RATE_LIMIT": "1000000/60",
        "DB_CONN_MAX_AGE": os.environ.get("DB_CONN_MAX_AGE", "0"),  # see bench/ingest.py for why
        "PYTHONUNBUFFERED": "1",
    }


def per_request(spent: float, loop: dict[str, Any], seconds: float) -> float | None:
    """Milliseconds of CPU ``spent`` per answer of a closed ``loop`` that ran ``seconds``."""
    answered = loop["rps"] * seconds
    return round(spent * 1000 / answered, 2) if answered else None


def prepare(tokens: int, conversations: int) -> dict[str, Any]:
    """Schema, a team of ``tokens`` operators with a token each, customers who wrote on SMS."""
    from django.core.management import call_command

    from api import tokens as api_tokens  # after django.setup() in main()
    from inbox.models import Operator, Team  # after django.setup() in main()
    from inbox.services import channels, inbound  # after django.setup() in main()
    from inbox.transport import InboundMessage  # after django.setup() in main()

    call_command("migrate", verbosity=0)
    team = Team.objects.create(name="Support")
    texts = []
    for n in range(tokens):
        operator = Operator.objects.create(username=f"op{n}", display_name=f"Operator {n}", capacity=1000)
        operator.teams.add(team)
        texts.append(api_tokens.issue_operator_token(name=f"bench {n}", operator=operator, by=operator).text)
    sms = channels.create_channel(kind="simulator", name="SMS", team=team, channel_settings={"medium": "sms"})
    ids = []
    for n in range(conversations):
        message = inbound.receive_message(
            channel=sms,
            inbound=InboundMessage(provider_id=f"bench-{n}", address=f"+1415{n:07d}", text=f"Where is order {n}?"),
        )
        ids.append(message.conversation_id)
    return {"tokens": texts, "conversations": ids}


async def closed_loop(url: str, tokens: list[str], seconds: float, concurrency: int) -> dict[str, Any]:
    import aiohttp

    counter = {"done": 0, "errors": 0}
    deadline = time.time() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker(n: int) -> None:
            turn = n
            while time.time() < deadline:
                headers = {"Authorization": f"Bearer {tokens[turn % len(tokens)]}"} if tokens else {}
                turn += 1
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    counter["done" if response.status == 200 else "errors"] += 1

        started = time.time()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.time() - started
    return {"rps": round(counter["done"] / elapsed, 1), "errors": counter["errors"]}


async def open_loop(requests: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Send ``requests`` (method, url, headers, json) at ``rate`` per second; time each answer."""
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def one(request: dict[str, Any]) -> None:
            sent = time.perf_counter()
            try:
                async with session.request(
                    request["method"], request["url"], headers=request["headers"], json=request.get("json")
                ) as response:
                    await response.read()
                    status = response.status
            except Exception:
                status = 0
            latencies.append((time.perf_counter() - sent) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

        start = time.time() + 0.1
        tasks = []
        for n, request in enumerate(requests):
            delay = start + n / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(request)))
        sent_by = time.time()
        await asyncio.gather(*tasks)
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    return {
        "rate": rate,
        "requests": len(requests),
        "send_rate": round(len(requests) / max(sent_by - start, 1e-6), 1),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def reads(base_url: str, tokens: list[str], count: int) -> list[dict[str, Any]]:
    return [
        {
            "method": "GET",
            "url": f"{base_url}/api/v1/conversations?limit=25",
            "headers": {"Authorization": f"Bearer {tokens[n % len(tokens)]}"},
        }
        for n in range(count)
    ]


def replies(
    base_url: str, tokens: list[str], conversations: list[int], count: int, offset: int
) -> list[dict[str, Any]]:
    return [
        {
            "method": "POST",
            "url": f"{base_url}/api/v1/conversations/{conversations[(offset + n) % len(conversations)]}/messages",
            "headers": {
                "Authorization": f"Bearer {tokens[n % len(tokens)]}",
                "Idempotency-Key": str(uuid.uuid4()),
            },
            "json": {"type": "reply", "text": f"Your order is on its way ({offset + n})."},
        }
        for n in range(count)
    ]


def drain(timeout: float = 60.0) -> float:
    """Wait until the worker has delivered every queued reply, then a second more; returns the wait.

    Each open-loop stage has already had all its answers (``open_loop`` gathers them), but the
    replies it queued may still be in the worker's hands, taking CPU and locks from the next
    stage. Without this, a stage measures the previous one's backlog too.
    """
    from inbox.models import Message  # after django.setup() in main()

    started = time.time()
    while time.time() - started < timeout:
        if not Message.objects.filter(status__in=["queued", "sending"]).exists():
            break
        time.sleep(0.2)
    time.sleep(1.0)
    return round(time.time() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_API_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_API_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--tokens", type=int, default=10)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--read-rates", default="20,50,100,200", help="Open-loop reads/s, comma-separated.")
    parser.add_argument("--reply-rates", default="10,20,40", help="Open-loop replies/s, comma-separated.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each open-loop stage.")
    parser.add_argument("--concurrency", type=int, default=16, help="Closed-loop requests in flight.")
    parser.add_argument("--closed-seconds", type=float, default=8.0)
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="parley-bench-api-"))
    env = environment(args, var_dir)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"

    log("database", args.database_url, "redis", args.redis_url)
    recreate_database(args.database_url)
    import django
    import redis

    django.setup()
    redis.Redis.from_url(args.redis_url).flushdb()
    started = time.time()
    prepared = prepare(args.tokens, args.conversations)
    log(f"loaded {args.conversations} conversations and {args.tokens} tokens in {time.time() - started:.0f}s")

    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, command: list[str]) -> None:
        handle = (var_dir / f"{name}.log").open("wb")
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT))

    try:
        start("web", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"])
        worker = ["celery", "-A", "config", "worker", "--loglevel", "WARNING", "--concurrency", "2"]
        start(
            "worker", [sys.executable, "-m", *worker, "--queues", "bench-api", "--without-mingle", "--without-gossip"]
        )
        wait_http(base_url + "/bench/trivial/")
        log("web and worker are up; logs in", var_dir)
        tokens, conversations = prepared["tokens"], prepared["conversations"]
        asyncio.run(open_loop(reads(base_url, tokens, 40), 40))  # warm-up
        load_before = os.getloadavg()[0]

        web = processes[0].pid
        cpu_before = cpu_seconds(web)
        trivial = asyncio.run(closed_loop(base_url + "/bench/trivial/", [], args.closed_seconds, args.concurrency))
        cpu_between = cpu_seconds(web)
        listing = asyncio.run(
            closed_loop(base_url + "/api/v1/conversations?limit=25", tokens, args.closed_seconds, args.concurrency)
        )
        cpu_after = cpu_seconds(web)
        ratio = listing["rps"] / trivial["rps"] if trivial["rps"] else None
        log(f"closed loop: trivial {trivial['rps']}/s, conversations {listing['rps']}/s")

        read_stages = []
        for rate in (float(r) for r in args.read_rates.split(",")):
            drained = drain()
            stage = asyncio.run(open_loop(reads(base_url, tokens, int(rate * args.seconds)), rate))
            stage["drained_s"] = drained
            log(f"reads at {rate}/s: p50 {stage['p50_ms']} ms, p99 {stage['p99_ms']} ms, {stage['statuses']}")
            read_stages.append(stage)
        reply_stages, offset = [], 0
        for rate in (float(r) for r in args.reply_rates.split(",")):
            count = int(rate * args.seconds)
            drained = drain()
            stage = asyncio.run(open_loop(replies(base_url, tokens, conversations, count, offset), rate))
            stage["drained_s"] = drained
            offset += count
            log(f"replies at {rate}/s: p50 {stage['p50_ms']} ms, p99 {stage['p99_ms']} ms, {stage['statuses']}")
            reply_stages.append(stage)

        at20 = next((s for s in reply_stages if s["rate"] == 20), None)
        print(
            json.dumps(
                {
                    "bench": "api",
                    "database": "postgresql",
                    "web": "daphne x1",
                    "worker": "celery prefork x2",
                    "tokens": args.tokens,
                    "conversations": args.conversations,
                    "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                    "trivial_view_rps": trivial["rps"],
                    "list_conversations_rps": listing["rps"],
                    "ratio_to_trivial": ratio and round(ratio, 3),
                    # The web process's CPU per answer (/proc): what a request costs, whatever the load.
                    "web_cpu_ms_per_trivial": per_request(cpu_between - cpu_before, trivial, args.closed_seconds),
                    "web_cpu_ms_per_list": per_request(cpu_after - cpu_between, listing, args.closed_seconds),
                    "closed_loop_errors": trivial["errors"] + listing["errors"],
                    "reads": read_stages,
                    "replies": reply_stages,
                    "targets": {
                        "reads_ratio_ge_0_5": bool(ratio and ratio >= 0.5),
                        "replies_p99_le_100ms_at_20": bool(
                            at20 and at20["ok"] == at20["requests"] and (at20["p99_ms"] or 1e9) <= 100
                        ),
                    },
                }
            )
        )
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
