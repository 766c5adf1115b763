"""The names of the channel layer's groups: who hears about what.

One group per operator, per team, per open conversation view and per customer (browsers showing any
of the customer's conversations), and one for staff. Names come from :func:`group_for` only.
"""

from __future__ import annotations


def group_for(kind: str, pk: int | str) -> str:
    """``operator``, ``team``, ``conversation``, ``customer`` or ``staff`` groups."""
    return f"inbox.{kind}.{pk}"


STAFF_GROUP = group_for("staff", "all")


def conversation_groups(conversation_id: int, team_id: int | None, assignee_id: int | None) -> list[str]:
    """The groups that hear about a conversation: its view, staff, its team and its assignee."""
    groups = [group_for("conversation", conversation_id), STAFF_GROUP]
    if team_id:
        groups.append(group_for("team", team_id))
    if assignee_id:
        groups.append(group_for("operator", assignee_id))
    return groups
