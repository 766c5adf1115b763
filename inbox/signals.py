"""Hooks other packages attach to. Sent after the transaction that made the change commits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse

from common.events import Event
from customers.signals import customer_created as customer_created
from customers.signals import customer_merged as customer_merged
from customers.signals import customer_updated as customer_updated

WebhookView = TypeVar("WebhookView", bound=Callable[..., HttpResponse])

# A customer message was stored. kwargs: message_id, conversation_id, auto_reply (bool); from
# ``receive_message`` also handler (the conversation's, as committed) and metadata (the message's), so
# receivers can tell without a query that a message does not concern them. Senders may leave those
# two out: a receiver then looks. ``held`` (from ``receive_message``): what an inbound hold kept the
# message as (a satisfaction score), '' for an ordinary message: the bot does not answer a held one.
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

# -- domain events ---------------------------------------------------------------------------------
# Sent once, after commit, by the services that are the only writers (``common.events.send_on_commit``;
# never on rollback). Receivers get ``event`` (the stable dotted name below) and ids; they read what
# they need. ``common.events.recorded`` carries the same events inside the writer's transaction, for
# an outbox (webhooks out). Listed in docs/architecture.md ("Events"): keep the names stable.

# A message was added to a thread: the customer's (kind "inbound"), ours to the customer ("outbound":
# an operator's or the bot's reply, a call placed from the browser) or a private note ("note").
# Activity entries are not messages. kwargs: message_id, conversation_id, customer_id, kind.
message_created = Event("message.created")
# An outbound message's delivery status moved (sent, delivered, read, failed; queued again when an
# operator retries it). The worker's own claim (queued → sending) is not an event. kwargs:
# message_id, conversation_id, old, new.
message_status_changed = Event("message.status_changed")
# A conversation was opened. kwargs: conversation_id, customer_id, team_id (may be None).
conversation_created = Event("conversation.created")
# A conversation's assignee changed. kwargs: conversation_id, assignee_id (None: unassigned),
# previous_id (None: it had nobody).
conversation_assigned = Event("conversation.assigned")
# The bot handed a conversation to people (its own decision, or an operator took it over). kwargs:
# conversation_id, reason.
conversation_handed_off = Event("conversation.handed_off")
# kwargs: conversation_id.
conversation_resolved = Event("conversation.resolved")
# A resolved or snoozed conversation was opened again (by an operator, the customer wrote, or its
# snooze ran out). kwargs: conversation_id.
conversation_reopened = Event("conversation.reopened")
# A conversation was snoozed (put aside until a time). kwargs: conversation_id.
conversation_snoozed = Event("conversation.snoozed")

# The customer events are the customers app's (it sits below the inbox); listed here with the rest.
EVENTS: tuple[Event, ...] = (
    message_created,
    message_status_changed,
    conversation_created,
    conversation_assigned,
    conversation_handed_off,
    conversation_resolved,
    conversation_reopened,
    conversation_snoozed,
    customer_created,
    customer_updated,
    customer_merged,
)

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
