"""Worker tasks of the Twilio connectors (registered when ``connectors.twilio`` is imported)."""

from __future__ import annotations

import logging

from celery import shared_task

from connectors.twilio.voice import TwilioVoiceConnector
from inbox.models import Channel

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def offer_voicemail(channel_id: int, call_sid: str, queue_sid: str) -> str:
    """A caller has waited ``voicemail_after`` seconds in the queue: take them out to leave a message."""

    channel = Channel.objects.filter(pk=channel_id, kind="twilio-voice", is_active=True).first()
    if channel is None:
        return "no-channel"
    return TwilioVoiceConnector(channel).offer_voicemail(call_sid=call_sid, queue_sid=queue_sid)


def schedule_voicemail_offer(channel_id: int, call_sid: str, queue_sid: str, *, after: float) -> None:
    """Schedule :func:`offer_voicemail`; without a broker the hold music's own check still applies."""
    try:
        offer_voicemail.apply_async(args=(channel_id, call_sid, queue_sid), countdown=max(0.0, after))
    except Exception:
        logger.exception("could not schedule the voicemail offer for call %s", call_sid)
