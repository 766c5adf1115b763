"""Reads for the widget: a visitor sees their own messages on their channel, and nothing else."""

from __future__ import annotations

import time

from django.db.models import Q

from connectors.webchat import protocol
from customers.models import Identity
from inbox.models import Channel, Message

HISTORY = 50  # messages a new tab (after=0) gets
RESUME_MAX = 200  # messages one resume returns at most; the widget asks again after the last

# Active webchat channels by key, kept briefly in this process (every frame and poll names one).
CHANNEL_CACHE_SECONDS = 5.0
_channels: dict[str, tuple[float, Channel | None]] = {}


def channel_by_key(key: str) -> Channel | None:
    now = time.monotonic()
    cached = _channels.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    channel = Channel.objects.filter(key=key, kind="webchat", is_active=True).first()
    if len(_channels) > 1000:
        _channels.clear()  # keys are random: a scan of made-up keys must not grow this without bound
    _channels[key] = (now + CHANNEL_CACHE_SECONDS, channel)
    return channel


def forget_channels() -> None:
    _channels.clear()


def visitor_customer_id(visitor: str) -> int | None:
    return (
        Identity.objects.filter(kind=Identity.Kind.WEBCHAT, value=visitor).values_list("customer_id", flat=True).first()
    )


def visitor_messages(
    *, channel: Channel, visitor: str, after: int | None = None, have: frozenset[int] = frozenset()
) -> list[Message]:
    """The visitor's conversation on this channel, oldest first: what they wrote and what we sent them.

    A resume names the start of the widget's window (``after``) and the ids it has above it
    (``have``): it gets every message above ``after`` that it does not have. Ids are not shown in
    id order (a reply queued before the visitor's last message goes out after it), so "everything
    after my last id" would skip one; the window does not. Without ``after``, the latest
    ``HISTORY`` (a new tab). Notes, other channels' messages and activity never show, except an
    operator taking the conversation ("Alice joined"). Read through the
    customer's timeline index, narrowed to this channel and this visitor's address.
    """
    customer_id = visitor_customer_id(visitor)
    if customer_id is None:
        return []
    own = Q(
        channel=channel,
        address=visitor,
        kind=Message.Kind.MESSAGE,
        direction__in=[Message.Direction.INBOUND, Message.Direction.OUTBOUND],
    )
    # "Alice joined": an operator taking one of the conversations the visitor wrote in here.
    joined = Q(
        kind=Message.Kind.ACTIVITY,
        metadata__action=protocol.JOINED,
        conversation_id__in=Message.objects.filter(customer_id=customer_id, channel=channel, address=visitor)
        .values("conversation_id")
        .distinct(),
    )
    messages = (
        Message.objects.filter(own | joined, customer_id=customer_id)
        .exclude(status__in=Message.NOT_SENT)  # a reply scheduled for later is not the visitor's yet
        .select_related("author")
        .prefetch_related("attachments")
    )
    if after is not None:
        return list(messages.filter(pk__gt=after).exclude(pk__in=have).order_by("pk")[:RESUME_MAX])
    return list(reversed(messages.order_by("-pk")[:HISTORY]))
