"""``fetchmail [--channel ID] [--once]``: fetch email channels' mailboxes, then follow them with IDLE."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors.email.imap import Mailbox, PollReport
from connectors.email.tasks import email_channels
from inbox.models import Channel


class Command(BaseCommand):
    help = "Fetch new mail of email channels over IMAP; without --once keep following them (IDLE or polling)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--channel", type=int, help="Only this channel (id).")
        parser.add_argument("--once", action="store_true", help="Fetch what is new, then exit.")
        parser.add_argument("--batch", type=int, default=100, help="Messages per fetch and transaction.")
        parser.add_argument("--poll-interval", type=float, default=60.0, help="Seconds between polls without IDLE.")

    def handle(self, *args: Any, **options: Any) -> None:
        channels = email_channels()
        if options["channel"]:
            channels = [c for c in channels if c.pk == options["channel"]]
            if not channels:
                exists = Channel.objects.filter(pk=options["channel"]).exists()
                raise CommandError(
                    f"channel {options['channel']} is not an active email channel with an IMAP host"
                    if exists
                    else f"no channel {options['channel']}"
                )
        if not channels:
            raise CommandError("no active email channel with an IMAP host")
        if options["once"]:
            for channel in channels:
                self.fetch_once(channel, options["batch"])
            return
        self.follow(channels, options["batch"], options["poll_interval"])

    def fetch_once(self, channel: Channel, batch: int) -> None:
        mailbox = Mailbox(channel, batch_size=batch, progress=self.progress_printer(channel))
        try:
            report = mailbox.poll()
        except Exception as exc:
            raise CommandError(f"channel {channel.pk} ({channel.name}): {exc}") from exc
        if report.locked:
            self.stdout.write(f"{channel.name}: another fetch is running; skipped")
            return
        note = " (UIDVALIDITY changed: rescanned)" if report.rescanned else ""
        if report.unreadable:
            note += f"; {report.unreadable} the server could not return (kept as failed events: see admin)"
        self.stdout.write(
            f"{channel.name}: {report.stored} new, {report.duplicates + report.skipped_known} already stored, "
            f"last UID {report.last_uid}{note}"
        )

    def progress_printer(self, channel: Channel) -> Any:
        def show(report: PollReport) -> None:
            if report.total > report.done or report.total > 100:
                self.stdout.write(f"{channel.name}: {report.done}/{report.total} fetched, {report.stored} stored")

        return show

    def follow(self, channels: list[Channel], batch: int, poll_interval: float) -> None:
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        threads = []
        for channel in channels:
            mailbox = Mailbox(channel, batch_size=batch, progress=self.progress_printer(channel))
            thread = threading.Thread(
                target=mailbox.watch, args=(stop,), kwargs={"poll_interval": poll_interval}, daemon=True
            )
            thread.start()
            threads.append(thread)
            self.stdout.write(f"following {channel.name} ({mailbox.folder})")
        while not stop.wait(1.0):
            pass
        for thread in threads:
            thread.join(timeout=35)
