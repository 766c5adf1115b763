from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.doctor import SECTIONS, examine


class Command(BaseCommand):
    help = (
        "Check this deployment: settings, database, Redis, workers and every active channel's credentials "
        "and webhook at its provider (nothing is sent). Prints what to fix; exits 1 when anything fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--skip", action="append", default=[], choices=sorted(SECTIONS), help="a section to leave out"
        )
        parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the workers (default 3)")

    def handle(self, *args: Any, **options: Any) -> None:
        problems = 0
        section = ""
        for finding in examine(skip=set(options["skip"]), timeout=options["timeout"]):
            if finding.section != section:
                section = finding.section
                self.stdout.write(section)
            if finding.ok:
                self.stdout.write(f"  ok    {finding.detail}")
            else:
                problems += 1
                self.stdout.write(self.style.ERROR(f"  FAIL  {finding.detail}"))
        if problems:
            raise CommandError(f"{problems} problem(s) to fix.")
        self.stdout.write(self.style.SUCCESS("Nothing to fix."))
