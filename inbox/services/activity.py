"""Activity entries: the lines in a thread that say who changed what, and when."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from inbox import signals
from inbox.models import Conversation, Message, Operator
from inbox.realtime import publish


def record_activity(
    *, conversation: Conversation, action: str, by: Operator | Any | None, data: dict[str, Any] | None = None
) -> Message:
    """An entry in the thread saying who changed what, and when."""
    message = Message.objects.create(
        conversation=conversation,
        customer_id=conversation.customer_id,
        kind=Message.Kind.ACTIVITY,
        direction=Message.Direction.INTERNAL,
        sender=Message.Sender.SYSTEM,
        author=by if isinstance(by, Operator) else None,
        text=action,
        metadata={"action": action, **(data or {})},
        created_at=timezone.now(),
    )
    transaction.on_commit(partial(publish.message_created, message.pk))
    transaction.on_commit(
        partial(
            signals.activity_recorded.send,
            sender=Message,
            message_id=message.pk,
            conversation_id=conversation.pk,
            action=action,
            data=message.metadata,
        )
    )
    return message
