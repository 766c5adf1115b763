"""Hooks other packages attach to. Sent after the transaction that made the change commits."""

from __future__ import annotations

from django.dispatch import Signal

# A customer message was stored. kwargs: message_id, conversation_id, auto_reply (bool); from
# ``receive_message`` also handler (the conversation's, as committed) and metadata (the message's), so
# receivers can tell without a query that a message does not concern them. Senders may leave those
# two out: a receiver then looks.
message_received = Signal()
# A conversation moved to the team's queue with nobody assigned. kwargs: conversation_id; from
# ``receive_message`` also team_id (may be None). A receiver queries when team_id is not given.
conversation_queued = Signal()
# An operator's capacity may have freed (resolved, unassigned, went online). kwargs: operator_id, team_ids.
capacity_freed = Signal()
# An operator is typing in a conversation (from their socket, at most every 2 s). kwargs:
# conversation_id, operator_id, name. Sent with ``asend``: receivers may be async (the website chat
# tells the visitor).
operator_typing = Signal()
# An activity entry was written in a conversation (assigned, resolved, ...). kwargs: message_id,
# conversation_id, action, data (the entry's metadata). The website chat shows "Alice joined" on
# ``assigned``; a receiver ignores the actions it does not need without a query.
activity_recorded = Signal()
