"""The bot's hook into the core: after a customer message commits, the bot takes its turn."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from bot import tasks
from inbox import signals
from inbox.models import Conversation

logger = logging.getLogger(__name__)


@receiver(signals.message_received, dispatch_uid="triage-bot-turn")
def bot_turn(sender: Any, message_id: int, conversation_id: int, auto_reply: bool = False, **kwargs: Any) -> None:
    """Enqueue triage when the bot owns the conversation; never for an auto-reply, nor for a message
    the inbox held as an answer to something of ours (a satisfaction score: ``held``)."""
    if auto_reply or kwargs.get("held"):
        return
    handler = kwargs.get("handler")
    if handler is not None:  # receive_message says who handles it, as committed: no query
        if handler == Conversation.Handler.BOT:
            tasks.enqueue_triage(message_id)
        return
    try:
        if not Conversation.objects.filter(pk=conversation_id, handler=Conversation.Handler.BOT).exists():
            return
    except Exception:
        # The stored message must not be undone or retried because of the bot.
        logger.exception("bot could not look at conversation %s", conversation_id)
        return
    tasks.enqueue_triage(message_id)
