"""The only module that broadcasts to operators' browsers. Always called after commit.

Group names come from :func:`group_for`; event types are prefixed ``inbox.``. Each event carries ids
(never rendered HTML: operators read the inbox in different languages) and an ``event_id``, so that a
browser that is in several of the event's groups handles it once, and so that a web process renders
each fragment once per language however many of its browsers receive it (see ``inbox/consumers.py``).

Events go to the groups that may see them: the conversation's view group (browsers showing its
thread), its team's group (inbox lists), the staff group and the assignee's own group. One event is
one ``async_to_sync`` hop, whatever the number of groups (PERF.md: the hop is the cost).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def group_for(kind: str, pk: int | str) -> str:
    """``operator``, ``team``, ``conversation`` or ``staff`` groups."""
    return f"inbox.{kind}.{pk}"


STAFF_GROUP = group_for("staff", "all")


async def _send_all(groups: list[str], event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in dict.fromkeys(groups):
        await layer.group_send(group, event)


def _send(groups: list[str], event: dict[str, Any]) -> None:
    event = {**event, "event_id": uuid.uuid4().hex}
    try:
        async_to_sync(_send_all)(groups, event)
    except Exception:
        # Realtime is best effort: the data is committed and clients catch up on reconnect.
        logger.exception("broadcast %s failed", event.get("type"))


def _conversation_groups(conversation: Any) -> list[str]:
    groups = [group_for("conversation", conversation.pk), STAFF_GROUP]
    if conversation.team_id:
        groups.append(group_for("team", conversation.team_id))
    if conversation.assignee_id:
        groups.append(group_for("operator", conversation.assignee_id))
    return groups


def message_created(message_id: int) -> None:
    from inbox.models import Message

    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None:
        return
    _send(
        _conversation_groups(message.conversation),
        {
            "type": "inbox.message",
            "message_id": message.pk,
            "conversation_id": message.conversation_id,
            "customer_id": message.customer_id,
            "kind": message.kind,
            "direction": message.direction,
            "assignee_id": message.conversation.assignee_id,
        },
    )


def message_changed(message_id: int) -> None:
    from inbox.models import Message

    message = Message.objects.filter(pk=message_id).only("pk", "conversation_id", "status").first()
    if message is None:
        return
    _send(
        [group_for("conversation", message.conversation_id)],
        {
            "type": "inbox.message_status",
            "message_id": message.pk,
            "conversation_id": message.conversation_id,
            "status": message.status,
        },
    )


def conversation_changed(conversation_id: int) -> None:
    from inbox.models import Conversation

    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return
    _send(
        _conversation_groups(conversation),
        {
            "type": "inbox.conversation",
            "conversation_id": conversation.pk,
            "version": conversation.version,
            "assignee_id": conversation.assignee_id,
        },
    )


def presence_changed(operator_id: int) -> None:
    from inbox.models import Operator

    operator = Operator.objects.filter(pk=operator_id).prefetch_related("teams").first()
    if operator is None:
        return
    groups = [group_for("team", team.pk) for team in operator.teams.all()] + [STAFF_GROUP]
    _send(groups, {"type": "inbox.presence", "operator_id": operator.pk, "presence": operator.presence})


async def typing(*, conversation_id: int, operator_id: int, name: str) -> None:
    """An operator is typing in a conversation: tell the others looking at it (from the consumer)."""
    layer = get_channel_layer()
    if layer is None:
        return
    await layer.group_send(
        group_for("conversation", conversation_id),
        {
            "type": "inbox.typing",
            "event_id": uuid.uuid4().hex,
            "conversation_id": conversation_id,
            "operator_id": operator_id,
            "name": name,
        },
    )


def conversation_assigned(conversation_id: int, operator_id: int) -> None:
    """Tell an operator's own browsers that a conversation was given to them (a desktop notification)."""
    _send(
        [group_for("operator", operator_id)],
        {"type": "inbox.assigned", "conversation_id": conversation_id, "operator_id": operator_id},
    )
