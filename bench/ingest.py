"""How many Twilio SMS webhooks Parley ingests, and how fast operators see them: ``python -m bench.ingest``.

``--channel telegram`` or ``--channel viber`` measures the same with Telegram updates (carrying the
webhook's secret token) or signed Viber message callbacks instead of Twilio SMS.

Starts its own Parley on loopback, on PostgreSQL and Redis like production: one web process (Daphne)
and one worker process (Celery, prefork, concurrency 2: the ``run`` default). Operators' websockets
(``--operators``, default 50, all in the channel's team) are held open by a separate process; signed
Twilio SMS webhooks (distinct MessageSids, a pool of customer numbers) come from another process:

1. closed loop (``--concurrency`` requests in flight, ``--closed-seconds``): the throughput of
   ``/bench/trivial/`` (a view returning "ok" through the same middleware on the same server) and of
   our webhook, and their ratio;
2. open loop at increasing rates (``--rates``, each for ``--seconds``): webhook response p50/p99,
   webhook-to-operator-screen p50/p99 (from sending the webhook to the ``changed`` frame on each
   operator's socket), and the backlog (stored events not yet processed) sampled every second.

The CPU time the web and worker processes spend per request and per message (from /proc) is
reported too: on a busy machine it moves far less than throughput and latency do.

A rate is *sustained* when every webhook got a 2xx, the sender kept the rate, response p99 stayed
under a second, and the backlog did not grow across the stage. Prints ONE JSON line; progress goes
to stderr. The database (``BENCH_INGEST_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/bench_ingest``) is dropped and created again on each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.harness import cpu_seconds, free_port, recreate_database, wait_http

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_ingest"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-ingest-auth-token-0123456789"  # noqa: S105 - a made-up token for a local run
PHONE_NUMBER_ID = "106540352242922"
TELEGRAM_SECRET = "bench-ingest-telegram-secret_0123456789"  # noqa: S105 - made up, as above
CHANNELS = ("twilio-sms", "whatsapp-cloud", "telegram", "viber")


def log(*parts: Any) -> None:
    print("[bench.ingest]", *parts, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


# -- the load generator (its own process) -----------------------------------------------------------


def _sms(sid: str, phone: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "Body": f"Hello, where is my order {sid[-6:]}?",
        "From": phone,
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": "+15555550100",
        "FromCountry": "US",
        "FromState": "CA",
        "FromCity": "SAN FRANCISCO",
        "FromZip": "94105",
        "ToCountry": "US",
        "ToState": "CA",
        "ToCity": "",
        "ToZip": "",
    }


def _whatsapp_cloud(sid: str, phone: str) -> dict[str, Any]:
    """A WhatsApp Cloud API text callback (docs/connectors/meta.md), the wamid being ``sid``."""
    wa_id = phone.lstrip("+")
    message = {"from": wa_id, "id": sid, "timestamp": str(int(time.time())), "type": "text"}
    message["text"] = {"body": f"Hello, where is my order {sid[-6:]}?"}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15555550100", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": f"Customer {wa_id[-4:]}"}, "wa_id": wa_id}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


def _messenger_requests(channel: str, prefix: str, count: int, phones: int) -> list[tuple[str, bytes, str]]:
    """(provider id, body, secret header value) of Telegram updates or signed Viber callbacks."""
    import hashlib
    import hmac
    import zlib

    base = (zlib.crc32(prefix.encode()) % 100_000) * 100_000
    requests = []
    for n in range(count):
        number, user = base + n, random.randrange(phones)
        text = f"Hello, where is my order {number % 1_000_000}?"
        if channel == "telegram":
            chat = 100_000_000 + user
            update = {
                "update_id": number,
                "message": {
                    "message_id": number,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private", "first_name": f"Customer {user}"},
                    "from": {"id": chat, "is_bot": False, "first_name": f"Customer {user}", "language_code": "en"},
                    "text": text,
                },
            }
            requests.append((f"{chat}:{number}", json.dumps(update).encode(), TELEGRAM_SECRET))
        else:
            token = 5_741_311_803_571_000_000 + number
            callback = {
                "event": "message",
                "timestamp": int(time.time() * 1000),
                "chat_hostname": "SN-CHAT-01_",
                "message_token": token,
                "sender": {"id": f"bench{user:07d}A=", "name": f"Customer {user}", "api_version": 10},
                "message": {"type": "text", "text": text},
                "silent": False,
            }
            body = json.dumps(callback).encode()
            requests.append((str(token), body, hmac.new(AUTH_TOKEN.encode(), body, hashlib.sha256).hexdigest()))
    return requests


def signed_requests(
    url: str, prefix: str, count: int, phones: int, channel: str = "twilio-sms"
) -> list[tuple[str, bytes, str]]:
    """(provider id, body, signature header) per webhook, for ``channel``'s kind."""
    if channel == "whatsapp-cloud":
        import hashlib
        import hmac

        signed = []
        for n in range(count):
            sid = f"wamid.{prefix}{n:0{32 - len(prefix)}d}"
            body = json.dumps(_whatsapp_cloud(sid, f"+1415{random.randrange(phones):07d}")).encode()
            digest = hmac.new(AUTH_TOKEN.encode(), body, hashlib.sha256).hexdigest()
            signed.append((sid, body, f"sha256={digest}"))
        return signed
    from twilio.request_validator import RequestValidator

    if channel != "twilio-sms":
        return _messenger_requests(channel, prefix, count, phones)

    validator = RequestValidator(AUTH_TOKEN)
    requests = []
    for n in range(count):
        sid = f"SM{prefix}{n:0{32 - len(prefix)}d}"
        params = _sms(sid, f"+1415{random.randrange(phones):07d}")
        requests.append((sid, urlencode(params).encode(), validator.compute_signature(url, params)))
    return requests


async def _post(session: Any, url: str, body: bytes, signature: str, channel: str = "twilio-sms") -> int:
    if signature.startswith("sha256="):  # Meta's
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
    elif channel == "telegram":
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": signature}
    elif channel == "viber":
        headers = {"Content-Type": "application/json", "X-Viber-Content-Signature": signature}
    else:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        return int(response.status)


async def _open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    rate, seconds, url = float(spec["rate"]), float(spec["seconds"]), spec["url"]
    channel = spec.get("channel", "twilio-sms")
    requests = signed_requests(url, spec["prefix"], int(rate * seconds), spec["phones"], channel)
    results: list[tuple[str, float, float, int]] = []
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def one(sid: str, body: bytes, signature: str, scheduled: float) -> None:
            try:
                status = await _post(session, url, body, signature, channel)
            except Exception:
                status = 0
            results.append((sid, scheduled, time.time(), status))

        start = time.time() + 0.2
        tasks = []
        for n, (sid, body, signature) in enumerate(requests):
            scheduled = start + n / rate
            delay = scheduled - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(sid, body, signature, scheduled)))
        sent_by = time.time()
        await asyncio.gather(*tasks)
    return {"results": results, "send_seconds": sent_by - start}


async def _closed_loop(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    url, seconds, concurrency = spec["url"], float(spec["seconds"]), int(spec["concurrency"])
    signed = spec.get("signed", False)
    channel = spec.get("channel", "twilio-sms")
    requests = signed_requests(url, spec["prefix"], 8000, spec["phones"], channel) if signed else []
    counter = {"done": 0, "errors": 0, "next": 0}
    deadline = time.time() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            while time.time() < deadline:
                if signed:
                    _sid, body, signature = requests[counter["next"] % len(requests)]
                    counter["next"] += 1
                    status = await _post(session, url, body, signature, channel)
                else:
                    async with session.get(url) as response:
                        await response.read()
                        status = response.status
                counter["done" if status == 200 else "errors"] += 1

        started = time.time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.time() - started
    return {"rps": counter["done"] / elapsed, "errors": counter["errors"], "requests": counter["done"]}


def load_main(spec: dict[str, Any]) -> None:
    mode = spec["mode"]
    result = asyncio.run(_open_loop(spec) if mode == "open" else _closed_loop(spec))
    print(json.dumps(result))


# -- the operators' screens (their own process) ------------------------------------------------------


async def _screens(spec: dict[str, Any]) -> dict[int, list[float]]:
    import aiohttp

    seen: dict[int, list[float]] = {}
    connected = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    gate = asyncio.Semaphore(4)  # connect a few at a time, as browsers do, not 50 in the same instant
    http = aiohttp.ClientSession()

    async def screen(session_key: str) -> None:
        nonlocal connected
        headers = {"Cookie": f"sessionid={session_key}", "Origin": spec["base_url"]}
        for attempt in range(6):
            try:
                async with gate:
                    ws = await http.ws_connect(spec["ws_url"], headers=headers, heartbeat=30)
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.5 * (attempt + 1))
        else:
            raise RuntimeError("could not connect an operator's websocket")
        connected += 1
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT or not frame.data.startswith("{"):
                continue
            now = time.time()
            data = json.loads(frame.data)
            if data.get("type") != "changed":
                continue
            # A coalesced ping names every new message since the last one; older servers sent one each.
            for message in data.get("messages") or [{**data, "id": data.get("message")}]:
                if message.get("id") and message.get("direction") == "in":
                    seen.setdefault(int(message["id"]), []).append(now)

    tasks = [asyncio.create_task(screen(key)) for key in spec["sessions"]]
    while connected < len(tasks) and not any(t.done() for t in tasks):  # noqa: ASYNC110 - polls two conditions
        await asyncio.sleep(0.05)
    failed = [t for t in tasks if t.done() and t.exception()]
    print(json.dumps({"ready": connected, "failed": [repr(t.exception()) for t in failed][:3]}), flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await http.close()
    return seen


def screens_main(spec: dict[str, Any]) -> None:
    seen = asyncio.run(_screens(spec))
    Path(spec["out"]).write_text(json.dumps(seen))


# -- the orchestrator ---------------------------------------------------------------------------------


def _environment(args: argparse.Namespace, var_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "PARLEY_CHANNEL_PREFIX": "bench-ingest",
        "PARLEY_QUEUE": "bench-ingest",
        "PARLEY_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "bench.ingest_settings",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        # Under ASGI every request runs in a thread of its own, so a persistent connection
        # (CONN_MAX_AGE > 0) is never reused and lingers until garbage-collected: under load the web
        # process exhausts PostgreSQL's max_connections and answers 500. Measure what works.
        "DB_CONN_MAX_AGE": os.environ.get("DB_CONN_MAX_AGE", "0"),
        "PYTHONUNBUFFERED": "1",
    }


def _prepare(operators: int, base_url: str, kind: str = "twilio-sms") -> dict[str, Any]:
    """Schema, a team with operators (logged-in sessions), a channel of ``kind``."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from inbox.models import Operator, Team  # after django.setup() in main()
    from inbox.services import channels  # after django.setup() in main()

    call_command("migrate", verbosity=0)
    team = Team.objects.create(name="Support")
    sessions = []
    for n in range(operators):
        operator = Operator.objects.create(username=f"op{n}", display_name=f"Operator {n}")
        operator.set_unusable_password()
        operator.save()
        operator.teams.add(team)
        store = SessionStore()
        store[SESSION_KEY] = str(operator.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = operator.get_session_auth_hash()
        store.create()
        sessions.append(store.session_key)
    if kind in ("telegram", "viber"):
        from inbox.models import Channel  # after django.setup() in main()

        # Made directly: adding it with ``channel add`` would register a webhook with the provider.
        values = (
            {"bot_token": "1:bench", "secret_token": TELEGRAM_SECRET, "api_base_url": "http://127.0.0.1:9"}
            if kind == "telegram"
            else {"auth_token": AUTH_TOKEN, "sender_name": "Bench", "api_base_url": "http://127.0.0.1:9"}
        )
        channel = Channel.objects.create(
            kind=kind, medium=kind, name=f"Bench {kind}", team=team, settings={**values, "public_base_url": base_url}
        )
        return {"channel": channel, "sessions": sessions}
    values: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": "+15555550100",
        "public_base_url": base_url,
        "api_base_url": "http://127.0.0.1:9",
    }
    if kind == "whatsapp-cloud":
        values = {
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": AUTH_TOKEN,
            "app_secret": AUTH_TOKEN,
            "public_base_url": base_url,
            "graph_base_url": "http://127.0.0.1:9",
        }
    channel = channels.create_channel(kind=kind, name=f"Bench {kind}", team=team, channel_settings=values)
    return {"channel": channel, "sessions": sessions}


def _pending() -> int:
    from inbox.models import InboundEvent  # after django.setup() in main()

    return InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).count()


def _run_load(env: dict[str, str], spec: dict[str, Any], sampler: Any = None) -> dict[str, Any]:
    # The results go to a file: through a pipe nobody reads until the end, more than a pipe's
    # 64 KB of them (a stage of 1 000 webhooks) would block the load generator for good.
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.ingest", "_load", json.dumps(spec)], cwd=ROOT, env=env, stdout=output
        )
        samples = []
        while process.poll() is None:
            if sampler is not None:
                samples.append(sampler())
            time.sleep(1.0)
        output.seek(0)
        result: dict[str, Any] = json.loads(output.read())
    result["samples"] = samples
    return result


def _wait_drained(timeout: float) -> float | None:
    started = time.time()
    while time.time() - started < timeout:
        if _pending() == 0:
            return round(time.time() - started, 2)
        time.sleep(0.25)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_INGEST_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_INGEST_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--rates", default="10,20,50,100,150,200", help="Open-loop webhooks/s, comma-separated.")
    parser.add_argument("--seconds", type=float, default=15.0, help="Length of each open-loop stage.")
    parser.add_argument("--operators", type=int, default=50)
    parser.add_argument("--phones", type=int, default=2000, help="How many distinct customers write.")
    parser.add_argument("--concurrency", type=int, default=16, help="Closed-loop requests in flight.")
    parser.add_argument("--closed-seconds", type=float, default=8.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--channel", choices=CHANNELS, default="twilio-sms", help="Whose webhooks to send.")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="parley-bench-ingest-"))
    env = _environment(args, var_dir)
    os.environ.update({k: v for k, v in env.items() if k not in os.environ or os.environ[k] != v})
    sys.path.insert(0, str(ROOT))
    port = args.port or free_port()
    base_url = f"http://127.0.0.1:{port}"

    log("database", args.database_url, "redis", args.redis_url)
    recreate_database(args.database_url)
    import django
    import redis

    django.setup()
    redis.Redis.from_url(args.redis_url).flushdb()
    prepared = _prepare(args.operators, base_url, args.channel)
    channel = prepared["channel"]
    webhook_url = f"{base_url}/hooks/{channel.key}/{'webhook' if args.channel == 'whatsapp-cloud' else 'inbound'}/"

    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, command: list[str]) -> subprocess.Popen[bytes]:
        handle = (var_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    try:
        start("web", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"])
        start(
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
                "bench-ingest",
                "--without-mingle",
                "--without-gossip",
            ],
        )
        web_pid, worker_pid = processes[0].pid, processes[1].pid
        wait_http(base_url + "/bench/trivial/")
        _wait_worker()
        log("web and worker are up; logs in", var_dir)

        spec = {"url": webhook_url, "phones": args.phones, "channel": args.channel}
        closed = {
            "mode": "closed",
            "seconds": args.closed_seconds,
            "concurrency": args.concurrency,
            "phones": args.phones,
        }
        _run_load(env, {**spec, "mode": "open", "rate": 20, "seconds": 2, "prefix": "W"})  # warm-up
        _wait_drained(60)
        load_before = os.getloadavg()[0]
        # Without operators first: what the webhook path itself costs next to a trivial view.
        bare_trivial = _run_load(env, {**closed, "url": base_url + "/bench/trivial/", "prefix": "t"})
        bare_webhook = _run_load(env, {**closed, **spec, "prefix": "c", "signed": True})
        _wait_drained(180)
        log(f"closed loop, no operators: trivial {bare_trivial['rps']:.0f}/s, webhook {bare_webhook['rps']:.0f}/s")

        out = var_dir / "screens.json"
        screens = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.ingest",
                "_screens",
                json.dumps(
                    {
                        "sessions": prepared["sessions"],
                        "base_url": base_url,
                        "ws_url": f"ws://127.0.0.1:{port}/ws/inbox/",
                        "out": str(out),
                    }
                ),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
        )
        processes.append(screens)
        ready = json.loads(screens.stdout.readline() if screens.stdout else b"{}")
        log("operators connected:", ready)

        web_cpu = cpu_seconds(web_pid)
        trivial = _run_load(env, {**closed, "url": base_url + "/bench/trivial/", "prefix": "T"})
        web_cpu, trivial_cpu = cpu_seconds(web_pid), cpu_seconds(web_pid) - web_cpu
        worker_cpu = cpu_seconds(worker_pid)
        webhook = _run_load(env, {**closed, **spec, "prefix": "C", "signed": True})
        webhook_cpu = cpu_seconds(web_pid) - web_cpu
        closed_drain = _wait_drained(180)
        worker_cpu = cpu_seconds(worker_pid) - worker_cpu
        served = max(1, webhook["requests"])
        cpu = {
            "web_ms_per_trivial_request": round(1000 * trivial_cpu / max(1, trivial["requests"]), 2),
            "web_ms_per_webhook": round(1000 * webhook_cpu / served, 2),
            "worker_ms_per_message": round(1000 * worker_cpu / served, 2) if closed_drain is not None else None,
        }
        log("CPU with operators connected:", json.dumps(cpu))
        log(
            f"closed loop, {args.operators} operators: trivial {trivial['rps']:.0f}/s, webhook {webhook['rps']:.0f}/s; drained in {closed_drain}s"
        )

        stages = []
        stage_sids: dict[str, list[tuple[str, float]]] = {}
        for index, rate in enumerate(float(r) for r in args.rates.split(",")):
            prefix = f"O{index}"
            cpu_before = cpu_seconds(web_pid), cpu_seconds(worker_pid)
            result = _run_load(
                env, {**spec, "mode": "open", "rate": rate, "seconds": args.seconds, "prefix": prefix}, _pending
            )
            backlog_end = _pending()
            drain = _wait_drained(120)
            cpu_after = cpu_seconds(web_pid), cpu_seconds(worker_pid)
            rows = result["results"]
            latencies = [(done - sent) * 1000 for _sid, sent, done, _status in rows]
            ok = sum(1 for row in rows if 200 <= row[3] < 300)
            statuses: dict[str, int] = {}
            for row in rows:
                statuses[str(row[3])] = statuses.get(str(row[3]), 0) + 1
            samples = result["samples"]
            third = max(1, len(samples) // 3)
            growth = (statistics.mean(samples[-third:]) - statistics.mean(samples[:third])) if samples else 0
            stage = {
                "rate": rate,
                "sent": len(rows),
                "ok": ok,
                "statuses": statuses,
                "send_rate": round(len(rows) / max(result["send_seconds"], 1e-6), 1),
                "response_p50_ms": percentile(latencies, 50),
                "response_p99_ms": percentile(latencies, 99),
                "backlog_samples": samples,
                "backlog_growth": round(growth, 1),
                "backlog_at_end": backlog_end,
                "drained_after_s": drain,
                # Web: webhooks and every operator's frames; worker: processing, hooks, broadcast.
                "web_cpu_ms_per_message": round(1000 * (cpu_after[0] - cpu_before[0]) / max(1, len(rows)), 2),
                "worker_cpu_ms_per_message": round(1000 * (cpu_after[1] - cpu_before[1]) / max(1, len(rows)), 2),
            }
            stage["sustained"] = bool(
                ok == len(rows)
                and stage["send_rate"] >= 0.95 * rate
                and (stage["response_p99_ms"] or 0) < 1000
                and growth <= max(2.0, rate * 0.25)
                and drain is not None
            )
            stages.append(stage)
            stage_sids[str(rate)] = [(sid, sent) for sid, sent, _done, _status in rows]
            log(json.dumps({k: v for k, v in stage.items() if k != "backlog_samples"}))
            if (
                not stage["sustained"]
                and index + 1 < len(args.rates.split(","))
                and len(stages) >= 2
                and not stages[-2]["sustained"]
            ):
                break

        time.sleep(2.0)  # let the last frames arrive
        screens.send_signal(signal.SIGTERM)
        screens.wait(timeout=30)
        seen = {int(k): v for k, v in json.loads(out.read_text()).items()}
        from inbox.models import Message  # after django.setup() in main()

        pk_by_sid = dict(Message.objects.filter(channel=channel, direction="in").values_list("provider_id", "pk"))
        for stage in stages:
            screen: list[float] = []
            missing = 0
            for sid, sent in stage_sids[str(stage["rate"])]:
                times = seen.get(pk_by_sid.get(sid, -1), [])
                if len(times) < args.operators:
                    missing += args.operators - len(times)
                screen.extend((t - sent) * 1000 for t in times)
            stage["screen_p50_ms"] = percentile(screen, 50)
            stage["screen_p99_ms"] = percentile(screen, 99)
            stage["screen_frames_missing"] = missing
            del stage["backlog_samples"]

        batches = _batched_acks(webhook_url, args.phones) if args.channel == "whatsapp-cloud" else None
        sustained = max((s["rate"] for s in stages if s["sustained"]), default=0.0)
        at20 = next((s for s in stages if s["rate"] == 20), None)
        at100 = next((s for s in stages if s["rate"] == 100), None)
        best = next((s for s in stages if s["rate"] == sustained), stages[0] if stages else None)
        ratio = webhook["rps"] / trivial["rps"] if trivial["rps"] else None
        print(
            json.dumps(
                {
                    "bench": "ingest",
                    "channel": args.channel,
                    "database": "postgresql",
                    "web": "daphne x1",
                    "worker": "celery prefork x2",
                    "db_conn_max_age": env["DB_CONN_MAX_AGE"],
                    "operators": ready.get("ready"),
                    "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                    "sustained_webhooks_per_s": sustained,
                    "latencies_at_rate": best and best["rate"],
                    "webhook_response_p50_ms": best and best["response_p50_ms"],
                    "webhook_response_p99_ms": best and best["response_p99_ms"],
                    "webhook_to_screen_p50_ms": best and best["screen_p50_ms"],
                    "webhook_to_screen_p99_ms": best and best["screen_p99_ms"],
                    "trivial_view_rps": round(trivial["rps"], 1),
                    "webhook_rps": round(webhook["rps"], 1),
                    "ratio_to_trivial": ratio and round(ratio, 3),
                    "cpu_with_operators": cpu,
                    "without_operators": {
                        "trivial_view_rps": round(bare_trivial["rps"], 1),
                        "webhook_rps": round(bare_webhook["rps"], 1),
                        "ratio_to_trivial": round(bare_webhook["rps"] / bare_trivial["rps"], 3)
                        if bare_trivial["rps"]
                        else None,
                    },
                    "targets": {
                        "ratio_ge_0_5": bool(ratio and ratio >= 0.5),
                        "screen_p99_le_100ms_at_20": bool(at20 and (at20["screen_p99_ms"] or 1e9) <= 100),
                        "no_backlog_growth_at_100": bool(at100 and at100["sustained"]),
                    },
                    "stages": stages,
                    **({"batch_of_50": batches} if batches else {}),
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


def _batched_acks(url: str, phones: int, rounds: int = 10) -> dict[str, Any]:
    """Meta batches: one callback of 50 messages, posted ``rounds`` times (new ids each), timed."""
    import hashlib
    import hmac

    import httpx

    times = []
    for n in range(rounds):
        callback = _whatsapp_cloud(f"wamid.B{n}", "+14150000000")
        value = callback["entry"][0]["changes"][0]["value"]
        value["messages"] = [
            {**value["messages"][0], "id": f"wamid.B{n}x{m:03d}", "from": f"1415{random.randrange(phones):07d}"}
            for m in range(50)
        ]
        body = json.dumps(callback).encode()
        signature = "sha256=" + hmac.new(AUTH_TOKEN.encode(), body, hashlib.sha256).hexdigest()
        started = time.perf_counter()
        response = httpx.post(
            url, content=body, headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature}
        )
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        time.sleep(0.5)
    drained = _wait_drained(120)
    return {
        "ack_p50_ms": percentile(times, 50),
        "ack_max_ms": round(max(times), 2),
        "rounds": rounds,
        "target_ack_le_200ms": max(times) <= 200,
        "drained_after_s": drained,
    }


def _wait_worker() -> None:
    from config.celery import app  # after django.setup() in main()

    deadline = time.time() + 60
    while time.time() < deadline:
        if app.control.ping(timeout=0.5):
            return
    raise SystemExit("the worker did not start")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_load":
        load_main(json.loads(sys.argv[2]))
    elif len(sys.argv) > 2 and sys.argv[1] == "_screens":
        screens_main(json.loads(sys.argv[2]))
    else:
        main()
