"""After an email is stored: cross-reference a message that answered somebody else's conversation.

A colleague of the customer (cc'd, or handed the mail) who answers our reply address or keeps our
subject token is their own customer with their own thread: a reply to them goes to them, and the
customer's history holds only the customer's words. So that operators do not miss it, the parser
marks the message with the conversation it answered (``metadata["related_conversation"]``) and this
receiver writes an activity entry into that conversation pointing at the new thread.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from inbox import signals
from inbox.models import Conversation, Message
from inbox.services import activity

logger = logging.getLogger(__name__)


@receiver(signals.message_received, dispatch_uid="email-related-conversation")
def note_related_conversation(sender: Any, message_id: int, **kwargs: Any) -> None:
    metadata = kwargs.get("metadata")
    if metadata is not None and "related_conversation" not in metadata:
        return  # the sender passed the message's metadata: it answered no other conversation
    try:
        # One narrow query, usually empty: this runs for every message of every channel.
        message = (
            Message.objects.select_related("customer")
            .filter(pk=message_id, channel__kind="email", metadata__has_key="related_conversation")
            .first()
        )
        if message is None:
            return
        related = Conversation.objects.filter(pk=message.metadata["related_conversation"]).first()
        if related is None or related.pk == message.conversation_id:
            return
        activity.record_activity(
            conversation=related,
            action="related_message",
            by=None,
            data={
                "conversation": message.conversation_id,
                "message": message.pk,
                "from_name": message.customer.display_name,
                "address": message.address,
            },
        )
    except Exception:
        # The stored message stands; only the cross-reference is missing.
        logger.exception("noting the conversation that message %s answered failed", message_id)
