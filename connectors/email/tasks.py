"""Scheduled polling of every IMAP mailbox (the safety net under IDLE, and the only way without it)."""

from __future__ import annotations

import logging

from celery import shared_task

from connectors.email.imap import Mailbox
from inbox.models import Channel

logger = logging.getLogger(__name__)


def email_channels() -> list[Channel]:
    return [c for c in Channel.objects.filter(kind="email", is_active=True) if c.settings.get("imap_host")]


@shared_task
def poll_mailboxes() -> int:
    """Queue one poll per IMAP channel (beat runs this every minute)."""
    channels = email_channels()
    for channel in channels:
        poll_mailbox.delay(channel.pk)
    return len(channels)


@shared_task(acks_late=True)
def poll_mailbox(channel_id: int) -> int:
    """Fetch what is new in one channel's mailbox; returns how many messages were stored."""

    channel = Channel.objects.filter(pk=channel_id, kind="email", is_active=True).first()
    if channel is None:
        return 0
    try:
        report = Mailbox(channel).poll()
    except Exception as exc:
        # A mailbox that is down is retried by the next beat; the error is what an admin needs.
        logger.warning("polling the mailbox of channel %s failed: %s", channel_id, exc)
        return 0
    return report.stored
