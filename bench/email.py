"""Importing a big mailbox: ``python -m bench.email [--messages 10000]``.

Starts a private Dovecot (the test peer, :mod:`tests.fakes.dovecot`), delivers N realistic messages
over LMTP (plain text, Gmail-style alternatives with quotes, Outlook-style replies, some with a
20 KB attachment; 500 different customers), then measures the two halves of the inbound path the
product runs, through the product's code:

1. **fetch + store**: ``Mailbox.poll()``, as ``fetchmail`` and the beat task run it: IMAP ``UID
   SEARCH``/``FETCH BODY.PEEK[]`` in batches, one ``InboundEvent`` per message (raw bytes) plus the
   cursor per batch transaction, and the Celery enqueue of each event on commit.
2. **parse + receive**: ``services.process_inbound_event`` for every stored event, exactly what the
   worker task does: MIME parsing, quote folding, customer resolution, thread, attachments, after-commit
   broadcast. Run in ``--workers`` processes (default 2, like the worker's concurrency).

RSS of this process is sampled at 25 %, 50 % and 100 % of the mailbox in both phases to show that
memory does not grow with the mailbox. Prints ONE JSON line on stdout; progress goes to stderr.

Database: ``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/bench_email``; it is
dropped and created again). Redis: ``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/8``), with
its own queue name so no worker picks the events up.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_PER_SECOND = 200.0


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 1048576, 1)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def setup_django(database_url: str, redis_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    os.environ["PARLEY_QUEUE"] = "bench-email"
    os.environ["PARLEY_CHANNEL_PREFIX"] = "bench-email"
    os.environ.setdefault("PARLEY_VAR_DIR", tempfile.mkdtemp(prefix="parley-bench-email-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def fresh_database(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        return
    import psycopg
    from django.db import connection
    from psycopg import sql

    params = connection.get_connection_params()
    name = connection.settings_dict["NAME"]
    for key in ("dbname", "cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def corpus(count: int, to: str) -> list[bytes]:
    """Realistic mail: a quarter plain, half HTML alternatives with quotes, one in ten with a file."""
    attachment = os.urandom(15000)
    messages = []
    for n in range(count):
        customer = n % 500
        mail = EmailMessage()
        mail["From"] = f"Customer {customer} <customer{customer}@customer.test>"
        mail["To"] = to
        mail["Subject"] = f"Order {10000 + n}: question"
        mail["Message-ID"] = f"<bench-{n}@customer.test>"
        mail["Date"] = "Sat, 22 Nov 2025 17:40:00 +0000"
        text = (
            f"Hello, my order {10000 + n} has not arrived yet. Could you check where it is?\n\n"
            f"Thanks,\nCustomer {customer}\n\nOn Fri, 21 Nov 2025 at 10:00, Acme Support wrote:\n"
            "> We shipped your order today.\n> --\n> Acme Support\n"
        )
        mail.set_content(text)
        if n % 4:
            mail.add_alternative(
                f"<div>Hello, my order {10000 + n} has not arrived yet. Could you check where it is?</div>"
                f'<div>Thanks,<br>Customer {customer}</div><div class="gmail_quote">On Fri Acme Support wrote:'
                '<blockquote class="gmail_quote">We shipped your order today.</blockquote></div>',
                subtype="html",
            )
        if n % 10 == 0:
            mail.add_attachment(attachment, maintype="application", subtype="pdf", filename=f"invoice-{n}.pdf")
        messages.append(mail.as_bytes())
    return messages


def _process(event_ids: list[int], database_url: str, redis_url: str, ready: Any, done: Any) -> None:
    """One worker process: set up Django, wait for the start signal, process its share, report RSS."""
    setup_django(database_url, redis_url)
    from inbox import services

    ready.wait()
    rss = {}
    for n, event_id in enumerate(event_ids, 1):
        services.process_inbound_event(event_id=event_id)
        if n in (len(event_ids) // 4, len(event_ids) // 2, len(event_ids)):
            rss[str(n)] = rss_mb()
    done.put(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument(
        "--process", type=int, default=0, help="parse+receive only this many events (default: all of them)"
    )
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_email")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
    setup_django(database_url, redis_url)
    fresh_database(database_url)
    from django.core.management import call_command
    from django.db import connection

    connection.close()
    call_command("migrate", verbosity=0)

    from connectors.email.imap import Mailbox, PollReport
    from inbox import services
    from inbox.models import InboundEvent, Message
    from tests.fakes.dovecot import Dovecot

    root = Path(tempfile.mkdtemp(prefix="parley-bench-dovecot-"))
    dovecot = Dovecot(root)
    dovecot.start()
    try:
        address = dovecot.new_mailbox()
        started = time.monotonic()
        messages = corpus(args.messages, address)
        size = sum(len(m) for m in messages)
        dovecot.drop_into_maildir(messages, to=address)
        del messages
        delivered_in = time.monotonic() - started
        print(f"mailbox of {args.messages} messages ready", file=sys.stderr)

        channel = services.create_channel(
            kind="email",
            name="Bench mailbox",
            channel_settings={**dovecot.channel_settings(address), "smtp_host": "127.0.0.1"},
        )
        marks = {args.messages // 4, args.messages // 2, args.messages}
        fetch_rss: dict[str, float] = {}

        def progress(report: PollReport) -> None:
            for mark in marks:
                if report.done >= mark and str(mark) not in fetch_rss:
                    fetch_rss[str(mark)] = rss_mb()
            print(f"fetched {report.done}/{report.total}", file=sys.stderr)

        # IMAP alone (the server's share): every body fetched in the same batches, nothing stored.
        mailbox = Mailbox(channel, batch_size=args.batch)
        started = time.monotonic()
        client = mailbox.connect()
        client.select_folder("INBOX", readonly=True)
        all_uids = sorted(client.search(["ALL"]))
        for start in range(0, len(all_uids), args.batch):
            client.fetch(all_uids[start : start + args.batch], ["BODY.PEEK[]"])
        client.logout()
        imap_seconds = time.monotonic() - started
        print(f"IMAP alone: {imap_seconds:.1f}s", file=sys.stderr)

        started = time.monotonic()
        report = Mailbox(channel, batch_size=args.batch, progress=progress).poll()
        fetch_seconds = time.monotonic() - started
        fetch_peak = peak_rss_mb()

        ids = list(InboundEvent.objects.filter(channel=channel).order_by("pk").values_list("pk", flat=True))
        if args.process:
            ids = ids[: args.process]
        # The connector's own share of parse+receive: MIME parsing and folding, no writes.
        from connectors.email.connector import EmailConnector

        connector = EmailConnector(channel)
        sample = list(InboundEvent.objects.filter(pk__in=ids[:1000]).order_by("pk"))
        started = time.monotonic()
        for event in sample:
            list(connector.parse(event))
        parse_seconds = time.monotonic() - started
        del sample

        connection.close()
        started = time.monotonic()
        process_rss: dict[str, float] = {}
        if args.workers <= 1:
            for done, event_id in enumerate(ids, 1):
                services.process_inbound_event(event_id=event_id)
                if done in marks:
                    process_rss[str(done)] = rss_mb()
                    print(f"processed {done}/{len(ids)}", file=sys.stderr)
        else:
            # Django start-up of the worker processes is not part of the measurement.
            context = multiprocessing.get_context("spawn")
            ready = context.Barrier(args.workers + 1)
            done = context.Queue()
            shards = [ids[i :: args.workers] for i in range(args.workers)]
            workers = [
                context.Process(target=_process, args=(shard, database_url, redis_url, ready, done)) for shard in shards
            ]
            for worker in workers:
                worker.start()
            ready.wait()
            started = time.monotonic()
            per_worker = [done.get() for _ in workers]
            process_seconds = time.monotonic() - started
            for worker in workers:
                worker.join()
            process_rss = {f"worker{i}:{k}": v for i, rss in enumerate(per_worker) for k, v in rss.items()}
        if args.workers <= 1:
            process_seconds = time.monotonic() - started

        stored = Message.objects.filter(channel=channel, direction="in").count()
        failed = InboundEvent.objects.filter(pk__in=ids).exclude(status="processed").count()
        fetch_rate = report.stored / fetch_seconds if fetch_seconds else 0.0
        process_rate = stored / process_seconds if process_seconds else 0.0
        # Both halves per message, as one process would see them one after the other.
        end_to_end = 1 / (1 / fetch_rate + 1 / process_rate) if fetch_rate and process_rate else 0.0
        result: dict[str, Any] = {
            "bench": "email",
            "database": connection.vendor,
            "messages": args.messages,
            "mailbox_mb": round(size / 1048576, 1),
            "mailbox_written_s": round(delivered_in, 1),
            "imap_fetch_only": {
                "seconds": round(imap_seconds, 2),
                "messages_per_s": round(len(all_uids) / imap_seconds, 1) if imap_seconds else 0.0,
            },
            "fetch_store": {
                "seconds": round(fetch_seconds, 2),
                "messages_per_s": round(fetch_rate, 1),
                "stored": report.stored,
                "rss_mb_at": fetch_rss,
                "peak_rss_mb": fetch_peak,
            },
            "connector_parse_only": {
                "messages_per_s": round(min(1000, len(ids)) / parse_seconds, 1) if parse_seconds else 0.0,
            },
            "parse_receive": {
                "seconds": round(process_seconds, 2),
                "messages_per_s": round(process_rate, 1),
                "processes": max(1, args.workers),
                "messages": stored,
                "events_not_processed": failed,
                **({"rss_mb_at": process_rss} if process_rss else {}),
            },
            "end_to_end_messages_per_s": round(end_to_end, 1),
            "peak_rss_mb": peak_rss_mb(),
            "target_messages_per_s": TARGET_PER_SECOND,
            "ok": report.stored == args.messages and stored == len(ids) and failed == 0,
            "meets_target": end_to_end >= TARGET_PER_SECOND,
        }
        print(json.dumps(result))
    finally:
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
        from django.core.cache import cache

        cache.clear()
        import redis

        redis.Redis.from_url(redis_url).delete("bench-email")


if __name__ == "__main__":
    main()
