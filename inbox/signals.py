"""Hooks other packages attach to. Sent after the transaction that made the change commits."""

from __future__ import annotations

from django.dispatch import Signal

# A customer message was stored. kwargs: message_id, conversation_id, auto_reply (bool).
message_received = Signal()
# A conversation moved to the team's queue with nobody assigned. kwargs: conversation_id.
conversation_queued = Signal()
# An operator's capacity may have freed (resolved, unassigned, went online). kwargs: operator_id, team_ids.
capacity_freed = Signal()
