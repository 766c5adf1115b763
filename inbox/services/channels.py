"""Channels: adding, switching on and off, and removing one, with its provider's webhook."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.services import record
from inbox.models import Channel, Message
from inbox.transport import connector_class, connector_for


def create_channel(
    *,
    kind: str,
    name: str,
    team: Any = None,
    channel_settings: dict[str, Any] | None = None,
    bot_enabled: bool = False,
) -> Channel:
    connector = connector_class(kind)
    values = dict(channel_settings or {})
    connector.validate_settings(values)
    medium = connector.medium_for(values)
    with transaction.atomic():
        channel = Channel.objects.create(
            kind=kind, medium=medium, name=name, team=team, settings=values, bot_enabled=bot_enabled
        )
        record(
            action="created",
            target=channel,
            details={"secret_keys": sorted(set(values) & set(connector.secret_settings))},
        )
    try:
        # Registers the webhook with the provider (Telegram, Viber), which may call it at once
        # (Viber does): so the channel is committed first, and removed again when refused.
        connector_for(channel).connect()
    except Exception:
        channel.delete()
        raise
    return channel


def set_channel_active(*, channel: Channel, active: bool) -> Channel:
    """Switch a channel on or off; its connector registers or removes the provider's webhook.

    Switched on first and then connected (the provider may call the webhook at once), and off
    again when the provider refuses.
    """
    if channel.is_active == active:
        return channel
    connector = connector_for(channel)
    if not active:
        connector.disconnect()
    channel.is_active = active
    channel.save(update_fields=["is_active"])  # saving also empties the webhook view's channel cache
    if active:
        try:
            connector.connect()
        except Exception:
            channel.is_active = False
            channel.save(update_fields=["is_active"])
            raise
    return channel


def remove_channel(*, channel: Channel) -> bool:
    """Remove a channel (its webhook first). One with messages is switched off instead, so its
    history stays; returns whether it was deleted."""
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk)
        connector_for(channel).disconnect()
        if Message.objects.filter(channel=channel).exists():
            channel.is_active = False
            channel.save(update_fields=["is_active"])
            return False
        channel.delete()
    return True
