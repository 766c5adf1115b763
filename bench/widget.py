"""The website chat widget: its size budget, and how it holds up with many visitors: ``python -m bench.widget``.

``python -m bench.widget --size`` checks the script against its budget (``BUDGET_GZIPPED`` bytes gzipped,
the way it is served) and exits 1 over it.

``python -m bench.widget`` starts its own Parley on loopback, on PostgreSQL and Redis like production:
one web process (Daphne) and one worker process (Celery, prefork, concurrency 2). A separate process
holds ``--visitors`` widget sockets (default 1 000; each says hello and stays) and ``--operators``
operators' sockets (default 50, all in the channel's team). Then, for ``--seconds``:

- ``--rate`` visitor messages a second (from ``--writers`` of the visitors, in turn), each timed from
  the widget's send to the ``changed`` frame naming it on every operator's socket;
- ``--rate`` operator replies a second to those visitors' conversations (``outbound.reply``, as the
  reply view calls it, in this process), each timed from the reply's commit to its frame on the
  visitor's socket (through the outbox, the worker and the channel layer).

It reports p50/p99 both ways, the frames a second the load process received, the web process's RSS
per idle visitor connection (before and after the visitors connected, nothing else running), the
worker's outbox backlog sampled every second, and whether latency grew across the run. Prints ONE
JSON line; progress goes to stderr. The database (``BENCH_WIDGET_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/bench_widget``) is dropped and created again on each run; Redis
is ``BENCH_WIDGET_REDIS_URL`` (default ``redis://127.0.0.1:6379/8``), used under its own prefixes.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import cpu_seconds, free_port, recreate_database, wait_http

ROOT = Path(__file__).resolve().parent.parent
BUDGET_GZIPPED = 30 * 1024
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_widget"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
ORIGIN = "http://bench.test"
TARGET_P99_MS = 150.0
TARGET_KB_PER_IDLE = 60.0


def log(*parts: Any) -> None:
    print("[bench.widget]", *parts, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


# -- the size budget ----------------------------------------------------------------------------------


def widget_version() -> str:
    """The version ``connectors/webchat/protocol.py`` serves (read without setting Django up)."""
    source = (ROOT / "connectors" / "webchat" / "protocol.py").read_text()
    match = re.search(r'^WIDGET_VERSION = "([0-9.]+)"', source, re.MULTILINE)
    if match is None:
        raise SystemExit("WIDGET_VERSION not found in connectors/webchat/protocol.py")
    return match.group(1)


def script_path() -> Path:
    return ROOT / "static" / "webchat" / f"parley-webchat.{widget_version()}.js"


def size() -> dict[str, Any]:
    body = script_path().read_bytes()
    gzipped = len(gzip.compress(body, compresslevel=9, mtime=0))
    return {
        "bench": "widget",
        "script": str(script_path().relative_to(ROOT)),
        "bytes": len(body),
        "gzipped_bytes": gzipped,
        "budget_gzipped_bytes": BUDGET_GZIPPED,
        "ok": gzipped <= BUDGET_GZIPPED,
    }


# -- the load process (visitors' and operators' sockets) ---------------------------------------------------


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    stop = asyncio.Event()
    go = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)
    )
    gate = asyncio.Semaphore(20)  # connect a few at a time, as real visitors arrive
    frames = {"count": 0, "since": 0.0}
    screen: dict[int, list[float]] = {}  # visitor message id -> operators' receipt times
    replies: dict[int, float] = {}  # reply id -> visitor's receipt time
    sent: dict[str, float] = {}  # client id -> send time
    acked: dict[str, int] = {}  # client id -> message id
    visitors: list[Any] = []
    errors: list[str] = []

    async def operator(session_key: str) -> None:
        headers = {"Cookie": f"sessionid={session_key}", "Origin": spec["base_url"]}
        async with gate:
            ws = await http.ws_connect(spec["base_ws"] + "/ws/inbox/", headers=headers, heartbeat=30)
        ready["operators"] += 1
        async for frame in ws:
            frames["count"] += 1
            if frame.type != aiohttp.WSMsgType.TEXT or not frame.data.startswith("{"):
                continue
            now = time.time()
            data = json.loads(frame.data)
            if data.get("type") == "changed":
                for message in data.get("messages") or []:
                    if message.get("direction") == "in":
                        screen.setdefault(int(message["id"]), []).append(now)

    async def visitor(index: int) -> None:
        async with gate:
            ws = await http.ws_connect(
                spec["base_ws"] + f"/ws/webchat/{spec['key']}/", headers={"Origin": ORIGIN}, heartbeat=None
            )
            await ws.send_json({"type": "hello", "locale": "en"})
            welcome = await ws.receive_json(timeout=30)
            if welcome.get("type") != "welcome":
                errors.append(json.dumps(welcome)[:200])
                return
        visitors.append(ws)
        ready["visitors"] += 1
        async for frame in ws:
            frames["count"] += 1
            data = json.loads(frame.data)
            if data.get("type") == "ack":
                acked[data["client_msg_id"]] = data["id"]
            elif data.get("type") == "message" and data["message"]["from"] != "visitor":
                replies.setdefault(int(data["message"]["id"]), time.time())
            elif data.get("type") == "error":
                errors.append(json.dumps(data)[:200])

    ready = {"operators": 0, "visitors": 0}
    tasks = [asyncio.create_task(operator(key)) for key in spec["sessions"]]
    tasks += [asyncio.create_task(visitor(n)) for n in range(spec["visitors"])]
    deadline = time.time() + 300
    while (ready["operators"] + ready["visitors"] + len(errors)) < len(tasks) and time.time() < deadline:
        if any(t.done() and t.exception() for t in tasks):
            break
        await asyncio.sleep(0.1)
    # Each writer writes once first: the run measures conversations that go on, not a burst of new
    # ones (each new conversation is also routed to an operator).
    writers = visitors[: spec["writers"]]
    for n, ws in enumerate(writers):
        await ws.send_json({"type": "message", "client_msg_id": str(uuid.uuid4()), "text": f"warm-up {n}"})
        await asyncio.sleep(0.02)
    while len(acked) < len(writers) and time.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)
    acked.clear()
    failed = [repr(t.exception()) for t in tasks if t.done() and t.exception()]
    print(json.dumps({"ready": ready, "failed": failed[:3], "errors": errors[:3]}), flush=True)

    await go.wait()
    frames["count"], frames["since"] = 0, time.time()
    interval = 1.0 / spec["rate"]
    started = time.monotonic()
    n = 0
    while not stop.is_set() and time.monotonic() - started < spec["seconds"]:
        ws = writers[n % len(writers)]
        client_msg_id = str(uuid.uuid4())
        sent[client_msg_id] = time.time()
        await ws.send_json({"type": "message", "client_msg_id": client_msg_id, "text": f"bench message {n}"})
        n += 1
        await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
    elapsed = time.time() - frames["since"]
    frame_rate = frames["count"] / max(elapsed, 1e-6)
    await asyncio.sleep(4.0)  # the run's last replies
    closed = await _closed_loops(http, spec)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await http.close()
    return {
        "sent": sent,
        "acked": acked,
        "screen": screen,
        "replies": replies,
        "frames_per_s": frame_rate,
        "errors": errors[:5],
        "send_seconds": elapsed,
        "closed": closed,
    }


async def _closed_loops(http: Any, spec: dict[str, Any], sockets: int = 20, seconds: float = 5.0) -> dict[str, float]:
    """Frames a second one web process turns round with ``sockets`` clients each waiting for its answer:
    a trivial echo consumer (the base), the widget's ping/pong, the widget's message/ack (stored)."""

    async def run(path: str, hello: bool, frame: Any) -> float:
        headers = {"Origin": ORIGIN} if hello else {}
        clients = [await http.ws_connect(spec["base_ws"] + path, headers=headers) for _ in range(sockets)]
        if hello:
            for ws in clients:
                await ws.send_json({"type": "hello"})
                await ws.receive_json(timeout=30)
        count = 0
        deadline = time.monotonic() + seconds

        async def loop(ws: Any) -> None:
            nonlocal count
            while time.monotonic() < deadline:
                await ws.send_str(json.dumps(frame()))
                await ws.receive(timeout=30)
                count += 1

        await asyncio.gather(*(loop(ws) for ws in clients))
        for ws in clients:
            await ws.close()
        return round(count / seconds, 1)

    echo = await run("/ws/echo/", False, lambda: {"type": "ping"})
    ping = await run(f"/ws/webchat/{spec['key']}/", True, lambda: {"type": "ping"})
    message = await run(
        f"/ws/webchat/{spec['key']}/",
        True,
        lambda: {"type": "message", "client_msg_id": str(uuid.uuid4()), "text": "closed loop"},
    )
    return {"echo_frames_per_s": echo, "widget_ping_frames_per_s": ping, "widget_messages_per_s": message}


def load_main(spec: dict[str, Any]) -> None:
    result = asyncio.run(_load(spec))
    Path(spec["out"]).write_text(json.dumps(result))


# -- the orchestrator ---------------------------------------------------------------------------------


def _prepare(operators: int) -> dict[str, Any]:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from inbox.models import Operator, Team
    from inbox.services import channels as services

    call_command("migrate", verbosity=0)
    team = Team.objects.create(name="Support")
    sessions = []
    for n in range(max(1, operators)):  # op0 answers even when no operator's socket is held
        operator = Operator.objects.create(username=f"op{n}", display_name=f"Operator {n}")
        operator.set_unusable_password()
        operator.save()
        operator.teams.add(team)
        store = SessionStore()
        store[SESSION_KEY] = str(operator.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = operator.get_session_auth_hash()
        store.create()
        if n < operators:
            sessions.append(store.session_key)
    channel = services.create_channel(
        kind="webchat", name="Bench chat", team=team, channel_settings={"allowed_origins": ORIGIN}
    )
    return {"channel": channel, "sessions": sessions, "operator": Operator.objects.get(username="op0")}


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _wait_worker() -> None:
    from config.celery import app

    deadline = time.time() + 60
    while time.time() < deadline:
        if app.control.ping(timeout=0.5):
            return
    raise SystemExit("the worker did not start")


def load(args: argparse.Namespace) -> dict[str, Any]:
    var_dir = Path(tempfile.mkdtemp(prefix="parley-bench-widget-"))
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "PARLEY_CHANNEL_PREFIX": "bench-widget",
        "PARLEY_QUEUE": "bench-widget",
        "PARLEY_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": "0",
        "PYTHONUNBUFFERED": "1",
        # Every visitor of the bench comes from 127.0.0.1: the per-address limits would stop them.
        "PARLEY_WEBCHAT_VISITORS_PER_MINUTE": "1000000",
        "PARLEY_WEBCHAT_ADDRESS_MESSAGES_PER_MINUTE": "1000000",
        "PARLEY_WEBCHAT_SOCKETS_PER_ADDRESS": "1000000",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log("database", args.database_url, "redis", args.redis_url)
    recreate_database(args.database_url)
    import django

    django.setup()
    prepared = _prepare(args.operators)
    channel = prepared["channel"]
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        handle = (var_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=handle, **{"stdout": handle, **kwargs})
        processes.append(process)
        return process

    try:
        web = start(
            "web", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bench.widget_asgi:application"]
        )
        worker = start(
            "worker",
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
                "2",
                "--queues",
                "bench-widget",
                "--without-mingle",
                "--without-gossip",
            ],
        )
        wait_http(f"{base_url}/webchat/parley-webchat.{widget_version()}.js")
        _wait_worker()
        log("web and worker are up")
        time.sleep(2.0)
        rss_before = _rss_kb(web.pid)
        out = var_dir / "load.json"
        spec = {
            "base_url": base_url,
            "base_ws": base_url.replace("http://", "ws://"),
            "key": channel.key,
            "sessions": prepared["sessions"],
            "visitors": args.visitors,
            "writers": min(args.writers, args.visitors),
            "rate": args.rate,
            "seconds": args.seconds,
            "out": str(out),
        }
        loader = start(
            "load", [sys.executable, "-m", "bench.widget", "_load", json.dumps(spec)], stdout=subprocess.PIPE
        )
        assert loader.stdout is not None
        ready = json.loads(loader.stdout.readline() or b"{}")
        log("connected:", ready)
        time.sleep(3.0)  # idle: the visitors only hold their sockets
        rss_idle = _rss_kb(web.pid)
        cpu_before = cpu_seconds(web.pid), cpu_seconds(worker.pid)
        loader.send_signal(signal.SIGUSR1)
        from inbox.models import Conversation, Message
        from inbox.services import outbound

        # Replies at --rate a second to the writers' conversations, as they open.
        interval = 1.0 / args.rate
        replies: dict[int, float] = {}
        backlog: list[int] = []
        started = time.monotonic()
        n = 0
        next_sample = started
        conversations: list[Any] = []
        while time.monotonic() - started < args.seconds:
            if time.monotonic() >= next_sample:
                backlog.append(Message.objects.filter(status__in=["queued", "sending"]).count())
                next_sample += 1.0
                conversations = list(Conversation.objects.filter(last_channel=channel).order_by("pk")[:500])
            if conversations:
                conversation = conversations[n % len(conversations)]
                message = outbound.reply(conversation=conversation, text=f"bench reply {n}", by=prepared["operator"])
                replies[message.pk] = time.time()
                n += 1
            time.sleep(max(0.0, started + n * interval - time.monotonic()) if conversations else 0.05)
        reply_seconds = time.monotonic() - started
        time.sleep(3.0)  # the last frames
        cpu_after = cpu_seconds(web.pid), cpu_seconds(worker.pid)
        time.sleep(18.0)  # the load process's closed loops
        loader.send_signal(signal.SIGTERM)
        loader.wait(timeout=60)
        result = json.loads(out.read_text())
        sent: dict[str, float] = result["sent"]
        acked: dict[str, int] = result["acked"]
        screen = {int(k): v for k, v in result["screen"].items()}
        to_operator = []
        missing_screens = 0
        for client_msg_id, at in sent.items():
            pk = acked.get(client_msg_id)
            times = screen.get(pk, []) if pk else []
            missing_screens += args.operators - len(times)
            to_operator.extend((t - at) * 1000 for t in times)
        received = {int(k): v for k, v in result["replies"].items()}
        to_visitor = [(received[pk] - at) * 1000 for pk, at in replies.items() if pk in received]
        third = max(1, len(backlog) // 3)
        growth = statistics.mean(backlog[-third:]) - statistics.mean(backlog[:third]) if backlog else 0.0
        # Every socket the load process holds (visitors and the operators') counts, so this is an upper bound.
        kb_per_idle = (rss_idle - rss_before) / max(1, ready["ready"]["visitors"] + ready["ready"]["operators"])
        report = {
            "bench": "widget",
            "database": "postgresql",
            "web": "daphne x1",
            "worker": "celery prefork x2",
            "visitors": ready["ready"]["visitors"],
            "operators": ready["ready"]["operators"],
            "rate_each_way_per_s": args.rate,
            "seconds": args.seconds,
            "visitor_messages": {"sent": len(sent), "acked": len(acked), "operator_frames_missing": missing_screens},
            "visitor_to_operator_p50_ms": percentile(to_operator, 50),
            "visitor_to_operator_p99_ms": percentile(to_operator, 99),
            "replies": {"sent": len(replies), "received": sum(1 for pk in replies if pk in received)},
            "reply_rate_kept": round(len(replies) / max(reply_seconds, 1e-6), 1),
            "operator_to_visitor_p50_ms": percentile(to_visitor, 50),
            "operator_to_visitor_p99_ms": percentile(to_visitor, 99),
            "frames_per_s_received": round(result["frames_per_s"], 1),
            # Closed loops after the run (20 sockets, 5 s each): a trivial echo consumer is the base.
            "closed_loop": result["closed"],
            "ratio_ping_to_echo": round(
                result["closed"]["widget_ping_frames_per_s"] / max(result["closed"]["echo_frames_per_s"], 1e-6), 3
            ),
            "ratio_message_to_echo": round(
                result["closed"]["widget_messages_per_s"] / max(result["closed"]["echo_frames_per_s"], 1e-6), 3
            ),
            # What the work costs, far less sensitive to a busy machine than latency.
            "web_cpu_ms_per_message": round(
                1000 * (cpu_after[0] - cpu_before[0]) / max(1, len(sent) + len(replies)), 2
            ),
            "worker_cpu_ms_per_reply": round(1000 * (cpu_after[1] - cpu_before[1]) / max(1, len(replies)), 2),
            "web_cpu_share": round((cpu_after[0] - cpu_before[0]) / max(reply_seconds + 3.0, 1e-6), 2),
            "web_rss_kb": {"before": rss_before, "visitors_idle": rss_idle},
            "web_kb_per_idle_connection": round(kb_per_idle, 1),
            "outbox_backlog_samples": backlog,
            "outbox_backlog_growth": round(growth, 1),
            "errors": result["errors"],
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        report["targets"] = {
            "p99_le_150ms_both_ways": bool(
                (report["visitor_to_operator_p99_ms"] or 1e9) <= TARGET_P99_MS
                and (report["operator_to_visitor_p99_ms"] or 1e9) <= TARGET_P99_MS
            ),
            "kb_per_idle_connection_le_60": kb_per_idle <= TARGET_KB_PER_IDLE,
            "no_backlog_growth": growth <= max(2.0, args.rate * 0.25),
            "nothing_lost": len(acked) == len(sent) and report["replies"]["received"] == len(replies),
        }
        return report
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        log("logs in", var_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", action="store_true", help="Only check the script's size budget.")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_WIDGET_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_WIDGET_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--visitors", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=200, help="How many of the visitors write, in turn.")
    parser.add_argument("--operators", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="Messages a second, each way.")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.size:
        report = size()
        print(json.dumps(report))
        return 0 if report["ok"] else 1
    report = {**load(args), "size": size()}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_load":
        load_main(json.loads(sys.argv[2]))
    else:
        sys.exit(main())
