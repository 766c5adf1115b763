"""Play a customer: ``simulate --channel sms --from +15005550006 --text "Hi"``; ``simulate outbox``.

Refused while the simulator is off (production mode, unless ``PARLEY_SIMULATOR=1``). The channel
of the medium is made on first use; addresses of real customers are refused (see
:mod:`connectors.simulator`).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors import simulator
from connectors.twilio.simulate import CallScript, place_call
from customers.services import InvalidAddress


class Command(BaseCommand):
    help = "Send a message as a customer on a simulated channel, or print what Parley sent them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", nargs="?", choices=["send", "outbox", "call"], default="send")
        parser.add_argument("--channel", choices=sorted(simulator.MEDIUM_IDENTITY), default="sms", help="Medium.")
        parser.add_argument("--from", dest="address", help="The customer's address on that medium.")
        parser.add_argument("--text", default="")
        parser.add_argument("--name", default="")
        parser.add_argument("--subject", default="")
        parser.add_argument("--choice", default="", help="Tap a button a message offered (its id, e.g. csat:5).")
        parser.add_argument("--to", default="", help="outbox: only what went to this address.")
        parser.add_argument("--say", action="append", default=[], help="call: what the caller says, in turn.")
        parser.add_argument("--answered-by", default="", help="call: the operator identity that picks up.")
        parser.add_argument("--voicemail", default="", help="call: the voicemail the caller leaves.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not simulator.enabled():
            raise CommandError(simulator.OFF)
        if options["action"] == "outbox":
            for row in simulator.outbox(to=options["to"]):
                self.stdout.write(json.dumps(row, ensure_ascii=False))
            return
        if options["action"] == "call":
            log = place_call(
                script=CallScript(
                    caller=options["address"] or "+15005550006",
                    says=options["say"],
                    answered_by=options["answered_by"],
                    voicemail=options["voicemail"],
                )
            )
            for who, line in log.lines:
                self.stdout.write(json.dumps({"who": who, "text": line}, ensure_ascii=False))
            return
        if not options["address"] or not options["text"]:
            raise CommandError("--from and --text are required")
        try:
            response = simulator.customer_says(
                medium=options["channel"],
                address=options["address"],
                text=options["text"],
                name=options["name"],
                subject=options["subject"],
                choice=options["choice"],
            )
        except InvalidAddress as exc:
            raise CommandError(str(exc)) from exc
        if response.status_code >= 400:
            raise CommandError(f"refused ({response.status_code}): {response.content.decode().strip()}")
        self.stdout.write(json.dumps({"accepted": True, "channel": options["channel"], "from": options["address"]}))
