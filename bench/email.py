"""Importing a big mailbox: ``python -m bench.email [--messages 10000]``.

Starts a private Dovecot (the test peer, :mod:`tests.fakes.dovecot`) and drops N realistic messages
into one mailbox (plain text, Gmail-style alternatives with quotes, one in ten with a 15 KB PDF;
500 different customers). Then it measures, through the product's own code:

1. ``imap_fetch_only`` — the server's share: every body fetched in the same batches, nothing stored.
2. ``fetch_store`` — ``Mailbox.poll()`` as ``fetchmail`` and the beat task run it, with no worker
   running: IMAP ``UID SEARCH``/``FETCH BODY.PEEK[]`` in batches, one multi-row ``INSERT`` of raw
   events plus the cursor per batch transaction, the Celery enqueue of each event on commit. This
   is the rate at which mail is safely in our database (nothing can be lost from here on).
3. ``end_to_end`` — the whole import on a second channel over the same mailbox, with a real Celery
   worker (``--concurrency``, default 2 like production's default) started before it: from the
   first IMAP command until every message is a :class:`~inbox.models.Message` in its customer's
   thread (parsed, quotes folded, customer resolved, conversation opened or joined, attachments
   stored, broadcast), the importer and the worker sharing the machine's cores. This is the rate a
   support team sees; its cost is the core receive path run by the worker.

The headline ``messages_per_s`` is the end-to-end rate. RSS is sampled at 25 %, 50 % and 100 % of
the mailbox, for the importer and for the worker processes, to show whether memory grows with the
mailbox. Prints ONE JSON line on stdout (with the load average before and after: the machine is
shared); progress goes to stderr.

Database: ``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/parley_bench_email``;
dropped and created again; a ``sqlite:///path`` URL works too). Redis: its own embedded redis-server
in a temp dir, or ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_PER_SECOND = 200.0
QUEUE = "bench-email"


def rss_mb(pid: int | None = None) -> float:
    with open(f"/proc/{pid or 'self'}/statm") as handle:
        pages = int(handle.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 1048576, 1)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def setup_django(database_url: str, redis_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)  # the embedded Redis in PARLEY_VAR_DIR
    os.environ["PARLEY_QUEUE"] = QUEUE
    os.environ["PARLEY_CHANNEL_PREFIX"] = QUEUE
    os.environ.setdefault("PARLEY_VAR_DIR", tempfile.mkdtemp(prefix="parley-bench-email-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def fresh_database(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
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
    """Realistic mail: a quarter plain, the rest HTML alternatives with quotes, one in ten with a file."""
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


class Worker:
    """A real Celery worker on the bench's database and Redis, like production runs it."""

    def __init__(self, concurrency: int, log: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.handle = log.open("wb")
        self.process = subprocess.Popen(
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
                "--queues",
                QUEUE,
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )
        self.peak = 0.0

    def wait_ready(self) -> None:
        from config.celery import app  # after django.setup() in main()

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if app.control.ping(timeout=0.5):
                return
            if self.process.poll() is not None:
                break
        raise RuntimeError("the worker did not start:\n" + self.log.read_text(errors="replace")[-3000:])

    def rss_mb(self) -> float:
        """Resident memory of the worker and its pool processes together."""
        total = 0.0
        pending = [self.process.pid]
        while pending:
            pid = pending.pop()
            try:
                total += rss_mb(pid)
                with open(f"/proc/{pid}/task/{pid}/children") as handle:
                    pending.extend(int(child) for child in handle.read().split())
            except OSError:
                continue  # a pool process that just exited
        value = round(total, 1)
        self.peak = max(self.peak, value)
        return value

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.handle.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=200, help="UIDs per IMAP fetch and per transaction")
    parser.add_argument("--concurrency", type=int, default=2, help="the Celery worker's processes")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up the end-to-end phase after this")
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parley_bench_email")
    redis_url = os.environ.get("BENCH_REDIS_URL", "")
    setup_django(database_url, redis_url)
    load_before = load_average()
    fresh_database(database_url)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    redis_process = None
    if settings.EMBEDDED:
        from config.management.commands.run import start_embedded_redis  # after django.setup() in main()

        # redis-server logs to the stdout it inherits: give it stderr, stdout carries the one result line.
        saved_stdout = os.dup(1)
        os.dup2(2, 1)
        try:
            redis_process = start_embedded_redis(settings.EMBEDDED_REDIS_SOCKET)
        finally:
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
    connection.close()
    call_command("migrate", verbosity=0)

    from connectors.email.imap import Mailbox, PollReport  # after django.setup() in main()
    from inbox.models import Conversation, InboundEvent, Message  # after django.setup() in main()
    from inbox.services import channels  # after django.setup() in main()
    from tests.fakes.dovecot import Dovecot  # after django.setup() in main()

    root = Path(tempfile.mkdtemp(prefix="parley-bench-dovecot-"))
    dovecot = Dovecot(root)
    dovecot.start()
    worker: Worker | None = None
    try:
        address = dovecot.new_mailbox()
        started = time.monotonic()
        messages = corpus(args.messages, address)
        size = sum(len(m) for m in messages)
        dovecot.drop_into_maildir(messages, to=address)
        del messages
        written_in = time.monotonic() - started
        print(f"mailbox of {args.messages} messages ready", file=sys.stderr)
        marks = sorted({args.messages // 4, args.messages // 2, args.messages})

        def channel(name: str) -> Any:
            return channels.create_channel(
                kind="email",
                name=name,
                channel_settings={**dovecot.channel_settings(address), "smtp_host": "127.0.0.1"},
            )

        # 1. IMAP alone (the server's share): every body fetched in the same batches, nothing stored.
        probe = Mailbox(channel("IMAP only"), batch_size=args.batch)
        started = time.monotonic()
        client = probe.connect()
        client.select_folder("INBOX", readonly=True)
        all_uids = sorted(client.search(["ALL"]))
        for start in range(0, len(all_uids), args.batch):
            client.fetch(all_uids[start : start + args.batch], ["BODY.PEEK[]"])
        client.logout()
        imap_seconds = time.monotonic() - started
        print(f"IMAP alone: {imap_seconds:.1f}s", file=sys.stderr)

        # 2. Fetch + store, no worker: the events wait in the queue, which is emptied afterwards.
        fetch_rss: dict[str, float] = {}

        def fetch_progress(report: PollReport) -> None:
            for mark in marks:
                if report.done >= mark and str(mark) not in fetch_rss:
                    fetch_rss[str(mark)] = rss_mb()
            print(f"fetch+store {report.done}/{report.total}", file=sys.stderr)

        store_channel = channel("Fetch and store")
        started = time.monotonic()
        stored = Mailbox(store_channel, batch_size=args.batch, progress=fetch_progress).poll()
        fetch_seconds = time.monotonic() - started
        fetch_peak = peak_rss_mb()
        import redis

        redis.Redis.from_url(settings.REDIS_URL).delete(QUEUE)
        InboundEvent.objects.filter(channel=store_channel).delete()

        # 3. End to end: a worker is up, then the import runs until every message is in a thread.
        connection.close()
        worker = Worker(args.concurrency, Path(os.environ["PARLEY_VAR_DIR"]) / "bench-worker.log")
        worker.wait_ready()
        e2e_channel = channel("End to end")
        worker_rss: dict[str, float] = {}
        importer_rss: dict[str, float] = {}
        imported: dict[str, Any] = {}

        def run_import() -> None:
            try:
                begun = time.monotonic()
                imported["report"] = Mailbox(e2e_channel, batch_size=args.batch).poll()
                imported["seconds"] = time.monotonic() - begun
            except Exception as exc:  # reported in the result, not lost in a thread
                imported["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                connection.close()

        started = time.monotonic()
        importer = threading.Thread(target=run_import)
        importer.start()
        done = 0
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            time.sleep(0.5)
            worker.rss_mb()
            done = Message.objects.filter(channel=e2e_channel, direction="in").count()
            for mark in marks:
                if done >= mark and str(mark) not in worker_rss:
                    worker_rss[str(mark)] = worker.rss_mb()
                    importer_rss[str(mark)] = rss_mb()
            print(f"end to end: {done}/{args.messages} in threads", file=sys.stderr)
            if done >= args.messages or worker.process.poll() is not None or "error" in imported:
                break
            if (
                not importer.is_alive()
                and not InboundEvent.objects.filter(channel=e2e_channel, status="pending").exists()
            ):
                break  # everything was tried; what failed is counted below
        e2e_seconds = time.monotonic() - started
        importer.join()
        failed = InboundEvent.objects.filter(channel=e2e_channel, status="failed").count()
        pending = InboundEvent.objects.filter(channel=e2e_channel, status="pending").count()
        conversations = Conversation.objects.filter(messages__channel=e2e_channel).distinct().count()
        load_after = load_average()

        fetch_rate = stored.stored / fetch_seconds if fetch_seconds else 0.0
        e2e_rate = done / e2e_seconds if e2e_seconds else 0.0
        import_report = imported.get("report")
        result: dict[str, Any] = {
            "bench": "email",
            "database": connection.vendor,
            "messages": args.messages,
            "messages_per_s": round(e2e_rate, 1),
            "peak_rss_mb": max(peak_rss_mb(), worker.peak),
            "target_messages_per_s": TARGET_PER_SECOND,
            "meets_target": e2e_rate >= TARGET_PER_SECOND,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "mailbox_mb": round(size / 1048576, 1),
            "mailbox_written_s": round(written_in, 1),
            "imap_fetch_only": {
                "seconds": round(imap_seconds, 2),
                "messages_per_s": round(len(all_uids) / imap_seconds, 1) if imap_seconds else 0.0,
            },
            "fetch_store": {
                "what": "IMAP fetch + raw events and cursor stored (no worker running)",
                "seconds": round(fetch_seconds, 2),
                "messages_per_s": round(fetch_rate, 1),
                "stored": stored.stored,
                "importer_rss_mb_at": fetch_rss,
                "importer_peak_rss_mb": fetch_peak,
                "meets_target": fetch_rate >= TARGET_PER_SECOND,
            },
            "end_to_end": {
                "what": "first IMAP command until every message is a Message in its thread (real worker)",
                "seconds": round(e2e_seconds, 2),
                "messages_per_s": round(e2e_rate, 1),
                "import_done_s": round(imported.get("seconds", 0.0), 2),
                "import_error": imported.get("error", ""),
                "stored": import_report.stored if import_report else 0,
                "messages_in_threads": done,
                "conversations": conversations,
                "events_failed": failed,
                "events_pending": pending,
                "worker_concurrency": args.concurrency,
                "worker_rss_mb_at": worker_rss,
                "worker_peak_rss_mb": worker.peak,
                "importer_rss_mb_at": importer_rss,
            },
            "ok": stored.stored == args.messages and done == args.messages and failed == 0,
        }
        print(json.dumps(result))
    finally:
        if worker is not None:
            worker.stop()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=10)


if __name__ == "__main__":
    main()
