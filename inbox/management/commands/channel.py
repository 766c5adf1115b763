"""``channel add KIND --name NAME [--team TEAM] [--set key=value ...]``, ``channel list``, and
``channel disable|enable|remove ID`` (the connector removes or registers the provider's webhook)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inbox.models import Channel, Team
from inbox.services import channels
from inbox.transport import ConfigurationError, connector_class, connector_for, kinds


def describe(channel: Channel) -> dict[str, Any]:
    connector = connector_for(channel)
    hidden = set(connector.secret_settings)
    return {
        "id": channel.pk,
        "kind": channel.kind,
        "medium": channel.medium,
        "name": channel.name,
        "team": channel.team.name if channel.team else None,
        "bot_enabled": channel.bot_enabled,
        "active": channel.is_active,
        "settings": {k: ("***" if k in hidden else v) for k, v in channel.settings.items()},
        "webhooks": connector.webhook_urls(),
        **connector.describe_extra(),
    }


class Command(BaseCommand):
    help = "Add and list channels."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Create a channel and print its webhook URLs as JSON.")
        add.add_argument("kind", help="Connector kind.")
        add.add_argument("--name", required=True)
        add.add_argument("--team", help="Name of the responsible team (created if missing).")
        add.add_argument("--bot", action="store_true", help="Let the bot answer first on this channel.")
        add.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="values")
        sub.add_parser("list", help="Print every channel as JSON, one per line.")
        for action, text in (
            ("disable", "Switch a channel off (its provider webhook is removed)."),
            ("enable", "Switch a channel back on (its provider webhook is registered again)."),
            ("remove", "Remove a channel; one with messages is switched off instead, keeping its history."),
        ):
            sub.add_parser(action, help=text).add_argument("id", type=int, help="The channel's id.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            for channel in Channel.objects.select_related("team").order_by("pk"):
                self.stdout.write(json.dumps(describe(channel)))
            return
        if options["action"] in ("disable", "enable", "remove"):
            self.change(options["action"], options["id"])
            return
        try:
            connector_class(options["kind"])
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        values: dict[str, str] = {}
        for item in options["values"]:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CommandError(f"--set takes key=value, not {item!r}")
            values[key.strip()] = value
        team = Team.objects.get_or_create(name=options["team"])[0] if options["team"] else None
        try:
            channel = channels.create_channel(
                kind=options["kind"],
                name=options["name"],
                team=team,
                channel_settings=values,
                bot_enabled=options["bot"],
            )
        except ConfigurationError as exc:
            raise CommandError(f"{exc} (known kinds: {', '.join(kinds())})") from exc
        self.stdout.write(json.dumps(describe(channel)))

    def change(self, action: str, pk: int) -> None:
        channel = Channel.objects.filter(pk=pk).first()
        if channel is None:
            raise CommandError(f"no channel {pk}")
        try:
            if action == "remove":
                deleted = channels.remove_channel(channel=channel)
                self.stdout.write(json.dumps({"id": pk, "removed": deleted, "active": False}))
                return
            channel = channels.set_channel_active(channel=channel, active=action == "enable")
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(describe(channel)))
