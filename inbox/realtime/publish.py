"""The only module that broadcasts to operators' browsers. Always called after commit.

Group names come from :func:`inbox.realtime.groups.group_for`; event types are prefixed ``inbox.``. Each event carries ids
(never rendered HTML: operators read the inbox in different languages) and an ``event_id``, so that a
browser that is in several of the event's groups handles it once, and so that a web process renders
each fragment once per language however many of its browsers receive it (see :mod:`inbox.realtime.consumers`).

Events go to the groups that may see them: the conversation's view group (browsers showing its
thread), its team's group (inbox lists), the staff group and the assignee's own group. Events about
messages also go to the customer's group: browsers showing another conversation of the same
customer, whose thread is the customer's one timeline. Each event carries the conversation's team
and its messages' kind and direction, so that the consumer applies :func:`inbox.visibility.may_read`
before it shows anything there (another team's notes never reach them).

One change is one event per conversation. Inside :func:`batched` the changes of a whole unit of work
(a customer's message, and the automatic assignment and activity entries it caused) are collected
and sent, on leaving the block, as one ``inbox.message`` event per conversation that lists its new
messages and says whether the conversation itself changed; a conversation that changed without new
messages gets one ``inbox.conversation`` event. Outside a batch every call is a batch of its own.

Events are published from one event loop per process, kept in a background thread, so the channel
layer's Redis connection is reused: ``async_to_sync`` from a plain thread makes a new loop and a new
connection on every call (docs/performance.md: 2.5 to 3.3 ms of CPU each, against ~0.1 ms here).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any

from channels.layers import get_channel_layer

from inbox.models import Conversation, Message, Operator
from inbox.realtime.groups import STAFF_GROUP, conversation_groups, group_for

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0  # seconds a broadcast may take before we give up on it (best effort)


# -- publishing from one long-lived loop per process --------------------------------------------------


class _Publisher:
    """A background event loop of this process (re-created after a fork) that the layer runs on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def _loop(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is None or self.pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="parley-realtime", daemon=True)
                thread.start()
                self.loop, self.pid = loop, os.getpid()
            return self.loop

    def run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop()).result(PUBLISH_TIMEOUT)


_publisher = _Publisher()


async def _send_all(sends: list[tuple[list[str], dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for groups, event in sends:
        for group in dict.fromkeys(groups):
            await layer.group_send(group, event)


def _publish(sends: list[tuple[list[str], dict[str, Any]]]) -> None:
    if not sends:
        return
    sends = [(groups, {**event, "event_id": uuid.uuid4().hex}) for groups, event in sends]
    if logger.isEnabledFor(logging.DEBUG):  # the line carries the request id (ops.requestid)
        logger.debug("broadcast %s", ", ".join(str(event.get("type")) for _g, event in sends))
    try:
        _publisher.run(_send_all(sends))
    except Exception:
        # Realtime is best effort: the data is committed and clients catch up on reconnect.
        logger.exception("broadcast of %s failed", ", ".join(str(event.get("type")) for _g, event in sends))


def send_now(group: str, event: dict[str, Any]) -> None:
    """Send ``event`` to a group of a connector's own (the website chat's visitors) at once, from this
    process's one publishing loop; raises when the layer cannot take it (the caller, a delivery, is
    then retried). One loop and one layer per process, whoever sends: each costs a thread, Redis
    connections and megabytes."""
    _publisher.run(_send_all([([group], event)]))


# -- batches: one event per conversation and unit of work ------------------------------------------------


class _Batch:
    def __init__(self) -> None:
        self.messages: dict[int, None] = {}
        self.conversations: dict[int, None] = {}
        self.others: list[tuple[list[str], dict[str, Any]]] = []

    def flush(self) -> None:
        rows: dict[int, dict[str, Any]] = {}
        new: dict[int, list[dict[str, Any]]] = {}
        if self.messages:
            for pk, kind, direction, conversation_id, team_id, assignee_id, version, customer_id in (
                Message.objects.filter(pk__in=list(self.messages))
                .order_by("pk")
                .values_list(
                    "pk",
                    "kind",
                    "direction",
                    "conversation_id",
                    "conversation__team_id",
                    "conversation__assignee_id",
                    "conversation__version",
                    "conversation__customer_id",
                )
            ):
                rows[conversation_id] = {
                    "team_id": team_id,
                    "assignee_id": assignee_id,
                    "version": version,
                    "customer_id": customer_id,
                }
                new.setdefault(conversation_id, []).append({"id": pk, "kind": kind, "direction": direction})
        missing = [pk for pk in self.conversations if pk not in rows]
        if missing:
            for pk, team_id, assignee_id, version, customer_id in Conversation.objects.filter(
                pk__in=missing
            ).values_list("pk", "team_id", "assignee_id", "version", "customer_id"):
                rows[pk] = {
                    "team_id": team_id,
                    "assignee_id": assignee_id,
                    "version": version,
                    "customer_id": customer_id,
                }
        sends: list[tuple[list[str], dict[str, Any]]] = []
        for conversation_id, row in rows.items():
            event: dict[str, Any] = {
                "type": "inbox.message" if conversation_id in new else "inbox.conversation",
                "conversation_id": conversation_id,
                "customer_id": row["customer_id"],
                "team_id": row["team_id"],
                "assignee_id": row["assignee_id"],
                "version": row["version"],
                "changed": conversation_id in self.conversations,
                "messages": new.get(conversation_id, []),
            }
            groups = conversation_groups(conversation_id, row["team_id"], row["assignee_id"])
            if conversation_id in new:
                groups.append(group_for("customer", row["customer_id"]))
            sends.append((groups, event))
        _publish(sends + self.others)


_current: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar("parley_realtime_batch", default=None)


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Collect every broadcast made inside the block and send them on leaving it, merged.

    Use it around after-commit work that makes several changes to the same conversations. Nested
    blocks join the outermost one.
    """
    if _current.get() is not None:
        yield
        return
    batch = _Batch()
    token = _current.set(batch)
    try:
        yield
    finally:
        _current.reset(token)
        try:
            batch.flush()
        except Exception:
            logger.exception("broadcast failed")


@contextlib.contextmanager
def _batch() -> Iterator[_Batch]:
    """The current batch, or a batch of one that is sent on leaving the block."""
    with batched():
        batch = _current.get()
        assert batch is not None  # noqa: S101 - set by batched()
        yield batch


def _send(groups: list[str], event: dict[str, Any]) -> None:
    """Send an event as it is (with the current batch, if any)."""
    with _batch() as batch:
        batch.others.append((groups, event))


# -- what services call ------------------------------------------------------------------------------------


def message_created(message_id: int) -> None:
    """A new entry in a thread (a message, a note, an activity)."""
    with _batch() as batch:
        batch.messages[message_id] = None


def conversation_changed(conversation_id: int) -> None:
    """A conversation's state moved (status, assignee, priority, last message...)."""
    with _batch() as batch:
        batch.conversations[conversation_id] = None


def message_changed(message_id: int) -> None:
    message = (
        Message.objects.filter(pk=message_id)
        .values("pk", "conversation_id", "conversation__team_id", "customer_id", "kind", "direction", "status")
        .first()
    )
    if message is None:
        return
    _send(
        [group_for("conversation", message["conversation_id"]), group_for("customer", message["customer_id"])],
        {
            "type": "inbox.message_status",
            "message_id": message["pk"],
            "conversation_id": message["conversation_id"],
            "customer_id": message["customer_id"],
            "team_id": message["conversation__team_id"],
            "kind": message["kind"],
            "direction": message["direction"],
            "status": message["status"],
        },
    )


def presence_changed(operator_id: int) -> None:
    operator = Operator.objects.filter(pk=operator_id).prefetch_related("teams").first()
    if operator is None:
        return
    groups = [group_for("team", team.pk) for team in operator.teams.all()] + [STAFF_GROUP]
    _send(groups, {"type": "inbox.presence", "operator_id": operator.pk, "presence": operator.presence})


async def viewers(*, conversation_id: int, viewers: list[dict[str, Any]]) -> None:
    """Who views a conversation now (``[{"id", "name"}]``): to everyone viewing it (from the consumer)."""
    layer = get_channel_layer()
    if layer is None:
        return
    await layer.group_send(
        group_for("conversation", conversation_id),
        {"type": "inbox.viewers", "event_id": uuid.uuid4().hex, "conversation_id": conversation_id, "viewers": viewers},
    )


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
    if operator_id:  # a customer typing (the website chat's visitor) is not an operator
        from inbox import signals

        try:
            await signals.operator_typing.asend(
                sender=None, conversation_id=conversation_id, operator_id=operator_id, name=name
            )
        except Exception:
            logger.exception("a typing receiver failed")


def access_changed(operator_id: int) -> None:
    """An operator's teams, staff flag or ``is_active`` changed (or they were deleted): their open
    sockets re-check what they may see, leave the groups they no longer belong to, or close."""
    _send([group_for("operator", operator_id)], {"type": "inbox.access", "operator_id": operator_id})


def conversation_assigned(conversation_id: int, operator_id: int) -> None:
    """Tell an operator's own browsers that a conversation was given to them (a desktop notification)."""
    _send(
        [group_for("operator", operator_id)],
        {"type": "inbox.assigned", "conversation_id": conversation_id, "operator_id": operator_id},
    )


def conversation_alert(conversation_id: int, operator_id: int, kind: str) -> None:
    """Tell an operator's own browsers about a conversation that needs them (a desktop notification):
    ``kind`` names an alert an app registered in :mod:`inbox.extensions` (``sla_breached``)."""
    _send(
        [group_for("operator", operator_id)],
        {"type": "inbox.alert", "conversation_id": conversation_id, "operator_id": operator_id, "kind": kind},
    )
