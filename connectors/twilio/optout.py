"""STOP / START / HELP from a customer on a Twilio messaging channel: record the opt-out or the
opt-in, and answer HELP with the channel's ``help_reply`` when it has one.

``parse`` only marks the keyword (``metadata["opt_keyword"]``); parsing never writes. This receiver
runs once the message is stored (``inbox.signals.message_received``, sent on commit) and calls the
core's ``opt_out`` / ``opt_in``. Twilio answers the keywords itself on long codes and blocks sends to
opted-out numbers (error 21610); recording it here lets Parley refuse a reply before trying, and say
why in the reply box. Twilio also answers HELP on long codes by default; ``help_reply`` is for
WhatsApp (where Twilio does not) and numbers whose default answers were switched off.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from inbox import signals
from inbox.models import Message
from inbox.services import conversations, outbound

logger = logging.getLogger(__name__)

KINDS = frozenset({"twilio-sms", "twilio-whatsapp"})


@receiver(signals.message_received, dispatch_uid="twilio-opt-keywords")
def record_opt_keyword(sender: Any, message_id: int, **kwargs: Any) -> None:
    metadata = kwargs.get("metadata")
    if metadata is not None and "opt_keyword" not in metadata:
        return  # the sender passed the message's metadata: not a keyword, no query
    try:
        # One narrow query, usually empty: this runs for every message of every channel.
        message = (
            Message.objects.select_related("channel", "customer", "conversation")
            .filter(pk=message_id, channel__kind__in=KINDS, metadata__has_key="opt_keyword")
            .first()
        )
        if message is None or message.channel is None:
            return
        keyword = message.metadata.get("opt_keyword")
        if keyword == "stop":
            conversations.opt_out(channel=message.channel, customer=message.customer, reason=message.text.strip()[:100])
        elif keyword == "start":
            conversations.opt_in(channel=message.channel, customer=message.customer)
        elif keyword == "help":
            answer_help(message)
    except Exception:
        # A failure here must not undo or retry the stored message; the operator still sees it.
        logger.exception("recording the opt keyword of message %s failed", message_id)


def answer_help(message: Message) -> None:
    """Send the channel's ``help_reply`` (if set) on the outbound path; the HELP stays in the thread."""
    assert message.channel is not None  # noqa: S101 - the query above selected a channel
    text = str(message.channel.settings.get("help_reply", "")).strip()
    if not text:
        return
    try:
        outbound.reply(
            conversation=message.conversation,
            text=text,
            by=None,
            sender=Message.Sender.SYSTEM,
            channel=message.channel,
            metadata={"auto": "help_reply"},
        )
    except conversations.ReplyRefused as refused:
        logger.info("no HELP answer to message %s: %s", message.pk, refused.reason)
