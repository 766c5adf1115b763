"""``meta_templates [--channel ID ...]``: sync WhatsApp Business Accounts' message templates.

Each WhatsApp Cloud channel with a ``waba_id`` (or the ones named) gets its account's templates;
the approved ones whose variables are all in the body are offered in the reply box outside the
24-hour window. Prints one JSON line per channel. Run it after approving a template in WhatsApp
Manager (or from cron); template status webhooks keep the statuses current in between.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors.meta.whatsapp import WhatsAppCloudConnector
from inbox.models import Channel
from inbox.transport import ConfigurationError, PermanentError, TransientError


class Command(BaseCommand):
    help = "Sync the message templates of WhatsApp Cloud channels from their Business Accounts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--channel", type=int, action="append", default=[], help="A channel id (default: all).")

    def handle(self, *args: Any, **options: Any) -> None:
        channels = Channel.objects.filter(kind=WhatsAppCloudConnector.kind, is_active=True).order_by("pk")
        if options["channel"]:
            channels = channels.filter(pk__in=options["channel"])
        elif not channels.exists():
            raise CommandError("no active whatsapp-cloud channel")
        failed = False
        for channel in channels:
            if not options["channel"] and not channel.settings.get("waba_id"):
                continue
            try:
                synced = WhatsAppCloudConnector(channel).sync_templates()
            except (ConfigurationError, PermanentError, TransientError) as exc:
                failed = True
                self.stderr.write(json.dumps({"channel": channel.pk, "error": str(exc)}))
                continue
            approved = sum(1 for t in synced if t["status"] == "APPROVED" and t["usable"])
            self.stdout.write(json.dumps({"channel": channel.pk, "templates": len(synced), "approved": approved}))
        if failed:
            raise CommandError("some channels could not be synced")
