"""The widget's hooks into the core: an operator typing in, or taking, a website chat conversation
shows to the visitor ("Alice is typing…", "Alice joined")."""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async

from connectors.webchat import protocol, push
from inbox.models import Channel, Message, Operator

logger = logging.getLogger(__name__)


def _visitor_of(conversation_id: int) -> tuple[int, str] | None:
    """(channel id, visitor) the conversation last heard from on a website chat, if any."""
    row = (
        Message.objects.filter(
            conversation_id=conversation_id, channel__kind="webchat", direction=Message.Direction.INBOUND
        )
        .order_by("-pk")
        .values_list("channel_id", "address")
        .first()
    )
    return (int(row[0]), str(row[1])) if row is not None and row[0] is not None else None


async def operator_typing(sender: Any, conversation_id: int, name: str = "", **kwargs: Any) -> None:
    found = await database_sync_to_async(_visitor_of)(conversation_id)
    if found is not None:
        await push.apush(found[0], found[1], {"type": "webchat.typing", "name": name})


def operator_joined(
    sender: Any, message_id: int, conversation_id: int, action: str, data: dict[str, Any], **kwargs: Any
) -> None:
    """An operator was assigned a conversation the visitor wrote in: "Alice joined", live in their tabs.

    A tab that was away gets the line with the history (:func:`connectors.webchat.selectors.visitor_messages`).
    """
    if action != protocol.JOINED:
        return
    try:
        found = _visitor_of(conversation_id)
        if found is None:
            return
        channel = Channel.objects.filter(pk=found[0]).first()
        entry = Message.objects.filter(pk=message_id).first()
        to = data.get("to")
        operator = Operator.objects.filter(pk=to).first() if isinstance(to, int) else None
        if channel is None or entry is None:
            return
        frame = protocol.joined_frame(entry, operator, protocol.names_style(channel))
        push.push(found[0], found[1], {"type": "webchat.message", "message": frame})
    except Exception:
        # The assignment stands; the visitor sees the line on their next resume.
        logger.warning("could not show conversation %s's new operator in the widget", conversation_id, exc_info=True)
