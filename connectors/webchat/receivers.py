"""The widget's hooks into the core: an operator typing in a website chat conversation shows to the visitor."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from connectors.webchat import push
from inbox.models import Message


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
