"""Scheduled polling of every Telegram bot in ``mode=polling`` (beat runs it every few seconds)."""

from __future__ import annotations

import logging

from celery import shared_task

from connectors.telegram.polling import poll
from inbox.models import Channel

logger = logging.getLogger(__name__)


def polling_channels() -> list[Channel]:
    return [c for c in Channel.objects.filter(kind="telegram", is_active=True) if c.settings.get("mode") == "polling"]


@shared_task
def poll_bots() -> int:
    """Queue one poll per polling bot."""
    channels = polling_channels()
    for channel in channels:
        poll_bot.delay(channel.pk)
    return len(channels)


@shared_task(acks_late=True)
def poll_bot(channel_id: int) -> int:
    """Fetch what is new for one bot; returns how many updates were stored."""

    channel = Channel.objects.filter(pk=channel_id, kind="telegram", is_active=True).first()
    if channel is None:
        return 0
    try:
        return poll(channel).stored
    except Exception as exc:
        # A bot that cannot be polled is tried again by the next beat; the error is logged.
        logger.warning("polling Telegram for channel %s failed: %s", channel_id, exc)
        return 0
