"""``manage.py reports rebuild [--since DATE]``: recompute the report rollups from the source rows."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports import rollups


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"--since takes a date like 2026-01-31, not {value!r}.") from error


class Command(BaseCommand):
    help = "Report rollups: 'rebuild' recomputes them from messages and conversations (safe while the worker runs)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        rebuild = sub.add_parser("rebuild", help="recompute the rollups (all days, or from --since to today)")
        rebuild.add_argument("--since", help="first day to recompute, YYYY-MM-DD (default: the oldest message's)")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _date(options["since"]) if options.get("since") else None
        started = time.monotonic()
        counts = rollups.rebuild(
            since=since, progress=lambda line: self.stderr.write(line) if options["verbosity"] > 1 else None
        )
        self.stdout.write(
            f"rebuilt the report rollups: {counts['conversations']:,} conversations, {counts['days']:,} days, "
            f"customers up to id {counts['customers']:,}, in {time.monotonic() - started:.1f} s"
        )
