"""The only module that broadcasts to operators' browsers. Always called after commit.

Group names come from :func:`group_for`; event types are prefixed ``inbox.``. Each broadcast renders
an HTML fragment once and sends it to the groups that may see it: the conversation's view group, its
team's group (inbox lists), the staff group, and the assignee's own group.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def group_for(kind: str, pk: int | str) -> str:
    """``operator``, ``team``, ``conversation`` or ``staff`` groups."""
    return f"inbox.{kind}.{pk}"


STAFF_GROUP = group_for("staff", "all")


def _send(groups: list[str], event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group in dict.fromkeys(groups):
            async_to_sync(layer.group_send)(group, event)
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
        {"type": "inbox.message", "message_id": message.pk, "conversation_id": message.conversation_id},
    )


def message_changed(message_id: int) -> None:
    from inbox.models import Message

    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None:
        return
    _send(
        [group_for("conversation", message.conversation_id)],
        {"type": "inbox.message_status", "message_id": message.pk, "conversation_id": message.conversation_id},
    )


def conversation_changed(conversation_id: int) -> None:
    from inbox.models import Conversation

    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return
    _send(
        _conversation_groups(conversation),
        {"type": "inbox.conversation", "conversation_id": conversation.pk, "version": conversation.version},
    )


def presence_changed(operator_id: int) -> None:
    from inbox.models import Operator

    operator = Operator.objects.filter(pk=operator_id).prefetch_related("teams").first()
    if operator is None:
        return
    groups = [group_for("team", team.pk) for team in operator.teams.all()] + [STAFF_GROUP]
    _send(groups, {"type": "inbox.presence", "operator_id": operator.pk, "presence": operator.presence})
