"""Hooks other packages attach to. Sent after the transaction that made the change commits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse

WebhookView = TypeVar("WebhookView", bound=Callable[..., HttpResponse])

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
# A provider's webhook request was answered (any status, a crash as 500). kwargs: key (the channel's
# webhook key, a secret: never log or show it), endpoint, status. Sent by ``announce_webhook``.
webhook_answered = Signal()
# An outbound message was accepted by its provider. kwargs: message_id, kind (the channel's connector
# kind), seconds (from the message's creation to now).
message_sent = Signal()


def announce_webhook(view: WebhookView) -> WebhookView:
    """Wrap the one webhook view so that every answer, a crash included, is announced once."""

    @functools.wraps(view)
    def announced(request: HttpRequest, key: str, endpoint: str, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, key=key, endpoint=endpoint, **kwargs)
        except Exception:
            webhook_answered.send_robust(sender=view, key=key, endpoint=endpoint, status=500)
            raise
        webhook_answered.send_robust(sender=view, key=key, endpoint=endpoint, status=response.status_code)
        return response

    return cast(WebhookView, announced)
