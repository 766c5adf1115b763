"""One websocket per operator's browser tab: live updates, presence and typing.

The socket joins the operator's own group, their teams' groups and (for staff) the staff group on
connect, and a conversation's view group (and its customer's group) only after checking the
operator may see it. What arrives through the customer's group (new entries of the customer's
other conversations) is shown only as :func:`inbox.visibility.may_read` allows, marked with its
team. Events from :mod:`inbox.realtime.publish` carry ids; the consumer turns them into htmx out-of-band fragments. A fragment
is rendered once per event and language in each web process (:func:`_render_once`), not once per
browser. Small JSON frames (``{"type": ...}``) carry what is not HTML: list pings, typing,
refusals; ``static/live.js`` handles them. A list ping names every conversation that changed since
the last one (``{"type": "changed", "conversations": [...], "messages": [...]}``); pings are
coalesced per socket (see ``LIST_FRAME_BUDGET``), so a busy inbox costs each browser a few frames a
second, not one per event.

Access is re-checked on every push, not only at connect: a push to the viewed thread checks the
conversation against the operator's access, cached per socket and keyed by the conversation's team
(which every event carries), so a conversation moved to another team is checked again; list pings
go only for conversations of the operator's teams. When an operator's teams, staff flag or
``is_active`` change, :mod:`inbox.realtime.access` publishes ``inbox.access`` to their own group: the socket
re-subscribes (leaves lost team groups, drops the view if it is no longer allowed, sends
``{"type": "access"}`` so the page re-fetches) or, for a deactivated or deleted operator, closes
with code 4403.

Frames from the browser:

- ``{"type": "view", "conversation": 12}`` (or ``null``): the thread this tab shows;
- ``{"type": "typing"}``: the operator is typing in the viewed conversation (throttled here too);
- ``{"type": "presence", "state": "online" | "away"}``: active or idle, sent on change and as a
  heartbeat every minute (which also keeps the tab among its thread's viewers).

Collision control: a tab that views a thread is recorded in Redis (``PresenceBook.view``), and
everyone viewing that thread gets ``{"type": "viewers", "conversation": 12, "names": [...]}`` — the
other operators viewing it now — when someone opens or leaves it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from common import redisconn
from inbox import extensions, visibility
from inbox.forms import SnoozeForm, teammates
from inbox.models import Conversation, Message, Operator
from inbox.realtime import publish
from inbox.realtime.groups import STAFF_GROUP, group_for
from inbox.selectors.conversations import customer_panel, visible_conversations
from inbox.services import conversations, outbound
from inbox.visibility import Scope

TYPING_EVERY = 2.0  # seconds between typing broadcasts from one tab
PRESENCE_FRESH = 150  # seconds a tab counts without a heartbeat
FRAGMENT_TTL = 10.0  # seconds a rendered fragment is kept for other browsers of this process
# List pings ("changed") are coalesced per socket: the first goes out at once, then at most one per
# window, naming every conversation that changed meanwhile. The window grows with the sockets this
# process holds, so that all of them together stay near LIST_FRAME_BUDGET frames a second (docs/performance.md:
# one process delivers a few thousand frames a second): 50 ms for 50 operators, 200 ms for 200.
LIST_FRAME_BUDGET = 1000.0
LIST_WINDOW_MIN = 0.05
LIST_WINDOW_MAX = 1.0
LIST_MESSAGES_MAX = 50  # new messages named in one ping; the list re-fetch covers the rest

_open_sockets = 0


def _list_window() -> float:
    return min(LIST_WINDOW_MAX, max(LIST_WINDOW_MIN, _open_sockets / LIST_FRAME_BUDGET))


# -- fragments, rendered once per (event, language) in this process -------------------------------

_fragments: collections.OrderedDict[tuple[str, ...], tuple[float, asyncio.Future[str]]] = collections.OrderedDict()


async def _render_once(key: tuple[str, ...], render: Callable[[], str]) -> str:
    now = time.monotonic()
    cached = _fragments.get(key)
    if cached is not None and cached[0] > now:
        return await asyncio.shield(cached[1])
    future: asyncio.Future[str] = asyncio.ensure_future(database_sync_to_async(render)())
    _fragments[key] = (now + FRAGMENT_TTL, future)
    while len(_fragments) > 512 or (_fragments and next(iter(_fragments.values()))[0] <= now):
        _fragments.popitem(last=False)
    return await asyncio.shield(future)


def _render(template: str, context: dict[str, Any], language: str) -> str:
    with translation.override(language):
        return render_to_string(template, {**context, "oob": True})


def render_new_message(message_id: int, language: str) -> str:
    """A new message, appended to the customer's timeline."""
    return render_message(message_id, language, template="inbox/partials/message_new.html")


def render_message(
    message_id: int, language: str, template: str = "inbox/partials/message.html", viewed: int | None = None
) -> str:
    """A message again, replacing the one shown (its delivery state moved).

    ``viewed`` is the conversation the thread was opened from, when it is not the message's own:
    the message is then marked with its team (``inbox_tags.other_team``) and offers no action.
    """
    message = (
        Message.objects.select_related("conversation__customer", "conversation__team", "channel", "author")
        .prefetch_related("attachments")
        .filter(pk=message_id)
        .first()
    )
    if message is None:
        return ""
    conversation = message.conversation
    if viewed is not None and viewed != conversation.pk:
        found = Conversation.objects.filter(pk=viewed).first()
        if found is None:
            return ""
        conversation = found
    context: dict[str, Any] = {
        "message": message,
        "customer": message.conversation.customer,
        "conversation": conversation,
    }
    if message.status == Message.Status.FAILED:
        context["reply_channels"] = outbound.reachable_channels(customer=message.conversation.customer)
    return _render(template, context, language)


def render_other_new_message(message_id: int, language: str, viewed: int) -> str:
    """A new message of another conversation of the customer, appended to the timeline viewed from ``viewed``."""
    return render_message(message_id, language, template="inbox/partials/message_new.html", viewed=viewed)


def render_other_message(message_id: int, language: str, viewed: int) -> str:
    """A message of another conversation of the customer again, in the timeline viewed from ``viewed``."""
    return render_message(message_id, language, viewed=viewed)


def render_header(conversation_id: int, language: str, scope: Scope) -> str:
    conversation = (
        Conversation.objects.select_related("customer", "assignee", "team").filter(pk=conversation_id).first()
    )
    if conversation is None:
        return ""
    context = {
        "conversation": conversation,
        "teammates": list(teammates(conversation)),
        "priorities": Conversation.Priority.choices,
        "snooze": SnoozeForm(),
    }
    # The customer panel lists this conversation's status too: send it along, as the viewer may see it.
    panel = customer_panel(operator=scope, customer_id=conversation.customer_id)
    return _render("inbox/partials/thread_header.html", context, language) + _render(
        "inbox/partials/customer_panel.html", {"panel": panel, "conversation": conversation}, language
    )


def render_presence(operator_id: int, language: str) -> str:
    operator = Operator.objects.filter(pk=operator_id).first()
    if operator is None:
        return ""
    return _render("inbox/partials/presence.html", {"operator": operator}, language)


def assignment_frame(conversation_id: int, language: str) -> dict[str, Any] | None:
    """The JSON frame behind an assignment's desktop notification, in the operator's language."""
    conversation = Conversation.objects.select_related("customer").filter(pk=conversation_id).first()
    if conversation is None:
        return None
    with translation.override(language):
        title = translation.gettext("Assigned to you: %(customer)s") % {"customer": conversation.customer.display_name}
    return {
        "type": "assigned",
        "conversation": conversation.pk,
        "title": title,
        "body": conversation.last_message_preview,
        "url": reverse("inbox:conversation", args=[conversation.pk]),
    }


def alert_frame(conversation_id: int, kind: str, language: str) -> dict[str, Any] | None:
    """The JSON frame behind an alert's desktop notification (an app's, :mod:`inbox.extensions`)."""
    title_for = extensions.ALERTS.get(kind)
    conversation = Conversation.objects.select_related("customer").filter(pk=conversation_id).first()
    if conversation is None or title_for is None:
        return None
    with translation.override(language):
        title = str(title_for(conversation))
    return {
        "type": "alert",
        "kind": kind,
        "conversation": conversation.pk,
        "title": title,
        "body": conversation.last_message_preview,
        "url": reverse("inbox:conversation", args=[conversation.pk]),
    }


# -- presence across tabs and processes ------------------------------------------------------------


class PresenceBook:
    """Which tabs an operator has open, and whether any is active, in Redis (shared by web processes).

    An operator is online while any fresh tab is active, away while all fresh tabs are idle, and
    offline with none. A tab whose process died stops counting after ``PRESENCE_FRESH`` seconds.
    """

    def __init__(self) -> None:
        self.client = redisconn.async_client(decode_responses=True)
        layer: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
        self.prefix = str(layer.get("CONFIG", {}).get("prefix", "parley"))

    def key(self, operator_id: int) -> str:
        return f"{self.prefix}:presence:{operator_id}"

    async def mark(self, operator_id: int, tab: str, state: str | None) -> str:
        """Record this tab's state (None: closed) and return the operator's presence."""
        key = self.key(operator_id)
        now = int(time.time())
        if state is None:
            await self.client.hdel(key, tab)
        else:
            await self.client.hset(key, tab, f"{state}:{now}")
            await self.client.expire(key, 86_400)
        tabs: dict[str, str] = await self.client.hgetall(key)  # type: ignore[assignment]  # decode_responses
        fresh: list[str] = []
        for field, value in tabs.items():
            tab_state, _, seen = value.partition(":")
            if now - int(seen or 0) < PRESENCE_FRESH:
                fresh.append(tab_state)
            else:
                await self.client.hdel(key, field)
        if Operator.Presence.ONLINE in fresh:
            return Operator.Presence.ONLINE
        if fresh:
            return Operator.Presence.AWAY
        return Operator.Presence.OFFLINE

    # -- who views a thread (collision control) --

    def viewers_key(self, conversation_id: int) -> str:
        return f"{self.prefix}:viewers:{conversation_id}"

    async def view(self, conversation_id: int, tab: str, operator_id: int, name: str) -> None:
        """This tab shows the conversation (again: a heartbeat keeps the entry fresh)."""
        key = self.viewers_key(conversation_id)
        await self.client.hset(key, tab, json.dumps({"id": operator_id, "name": name, "at": int(time.time())}))
        await self.client.expire(key, PRESENCE_FRESH * 4)

    async def unview(self, conversation_id: int, tab: str) -> None:
        await self.client.hdel(self.viewers_key(conversation_id), tab)

    async def viewers(self, conversation_id: int) -> list[dict[str, Any]]:
        """The operators with a fresh tab on the conversation, once each: ``[{"id", "name"}]``."""
        key = self.viewers_key(conversation_id)
        tabs: dict[str, str] = await self.client.hgetall(key)  # type: ignore[assignment]  # decode_responses
        now, found = int(time.time()), {}
        for field, value in tabs.items():
            try:
                entry = json.loads(value)
            except ValueError:
                entry = {}
            if not isinstance(entry, dict) or now - int(entry.get("at", 0)) >= PRESENCE_FRESH:
                await self.client.hdel(key, field)
                continue
            found[entry["id"]] = {"id": entry["id"], "name": entry["name"]}
        return sorted(found.values(), key=lambda viewer: str(viewer["name"]).casefold())

    async def close(self) -> None:
        await self.client.aclose()


def _set_presence(operator_id: int, presence: str) -> None:
    operator = Operator.objects.filter(pk=operator_id).first()
    if operator is not None and operator.presence != presence:
        conversations.set_presence(operator=operator, presence=presence)


def _groups_for(operator: Operator) -> list[str]:
    groups = [group_for("operator", operator.pk)]
    groups += [group_for("team", pk) for pk in operator.team_ids]
    if operator.is_staff:
        groups.append(STAFF_GROUP)
    return groups


def _viewable_customer(operator: Operator, conversation_id: int) -> int | None:
    """The conversation's customer when the operator may see the conversation; None otherwise."""
    found: int | None = (
        visible_conversations(operator).filter(pk=conversation_id).values_list("customer_id", flat=True).first()
    )
    return found


def _reload(operator_id: int) -> tuple[Operator, list[str], Scope] | None:
    """The operator as they are now, the groups they belong in and what they may read; None if they
    may not sign in."""
    operator = Operator.objects.filter(pk=operator_id, is_active=True).first()
    if operator is None:
        return None
    return operator, _groups_for(operator), Scope.of(operator)


def _visibility(operator: Operator, conversation_id: int) -> tuple[int | None, bool] | None:
    """``(team_id, True)`` when the operator may see the conversation, None when not."""
    row = visible_conversations(operator).filter(pk=conversation_id).values_list("team_id", flat=True)[:1]
    return (row[0], True) if row else None


ANY_TEAM = object()  # a check whose event does not say the conversation's team: any cached answer will do


def _language(scope: dict[str, Any]) -> str:
    code = scope.get("cookies", {}).get(settings.LANGUAGE_COOKIE_NAME, "")
    return code if code in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


class OperatorConsumer(AsyncJsonWebsocketConsumer):
    operator: Operator
    viewing: int | None
    joined: list[str]
    # Access, re-checked on every push to the conversation view: conversation id -> (the
    # conversation's team when checked, allowed). Cleared by ``inbox.access`` (the operator's teams
    # or flags changed); an event naming another team for the conversation (it moved) re-checks.
    access: dict[int, tuple[object, bool]]
    closing: bool = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its hop to the sync thread before every message.

        Channels (4.2+) closes stale database connections before each handler by running
        ``close_old_connections`` in the one thread-sensitive sync thread: with every operator's
        socket taking that hop for every event, 50 sockets queued behind one thread and the last
        screen saw a message seconds late. Every database call here goes through
        ``database_sync_to_async``, which closes stale connections in its own thread anyway.
        """
        if self.closing and message["type"].startswith("inbox."):
            return  # closed for lost access: events still queued for this socket are dropped
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.operator = user
        self.viewing = None
        self.viewing_customer: int | None = None
        self.access = {}
        self.language = _language(self.scope)
        self.seen: collections.deque[str] = collections.deque(maxlen=128)
        self.typing_at = 0.0
        self.joined = await database_sync_to_async(_groups_for)(user)
        self.scope_of_reads = await database_sync_to_async(Scope.of)(user)  # read once, like the groups
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.list_pending: dict[int, None] = {}
        self.list_messages: list[dict[str, Any]] = []
        self.list_sent_at = 0.0
        self.list_timer: asyncio.TimerHandle | None = None
        self.presence = PresenceBook()
        await self._presence(Operator.Presence.ONLINE)
        await self.accept()
        global _open_sockets
        _open_sockets += 1

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "joined"):
            return
        if hasattr(self, "list_timer"):
            global _open_sockets
            _open_sockets = max(0, _open_sockets - 1)
            if self.list_timer is not None:
                self.list_timer.cancel()
                self.list_timer = None
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        await self._unview()
        if hasattr(self, "presence"):
            await self._presence(None)
            await self.presence.close()

    async def _presence(self, state: str | None) -> None:
        presence = await self.presence.mark(self.operator.pk, self.channel_name, state)
        await database_sync_to_async(_set_presence)(self.operator.pk, presence)

    # -- from the browser ---------------------------------------------------------------------------

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        # A frame that is not JSON is ignored, not a reason to drop the operator's connection.
        try:
            return json.loads(text_data)
        except ValueError:
            return None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "view":
            await self._view(content.get("conversation"))
        elif kind == "typing" and self.viewing is not None:
            now = time.monotonic()
            if now - self.typing_at >= TYPING_EVERY:
                self.typing_at = now
                await publish.typing(
                    conversation_id=self.viewing, operator_id=self.operator.pk, name=self.operator.label
                )
        elif kind == "presence" and content.get("state") in (Operator.Presence.ONLINE, Operator.Presence.AWAY):
            await self._presence(content["state"])
            if self.viewing is not None:  # the heartbeat keeps this tab among the thread's viewers
                await self.presence.view(self.viewing, self.channel_name, self.operator.pk, self.operator.label)

    async def _unview(self) -> None:
        if self.viewing is not None:
            left = self.viewing
            await self.channel_layer.group_discard(group_for("conversation", left), self.channel_name)
            self.viewing = None
            await self.presence.unview(left, self.channel_name)
            await publish.viewers(conversation_id=left, viewers=await self.presence.viewers(left))
        if self.viewing_customer is not None:
            group = group_for("customer", self.viewing_customer)
            await self.channel_layer.group_discard(group, self.channel_name)
            self.viewing_customer = None

    async def _view(self, conversation: Any) -> None:
        await self._unview()
        if conversation is None:
            return
        try:
            conversation_id = int(conversation)
        except (TypeError, ValueError):
            await self.send_json({"type": "refused", "conversation": None})
            return
        self.access.pop(conversation_id, None)  # opening a thread always asks the database
        customer_id = await database_sync_to_async(_viewable_customer)(self.operator, conversation_id)
        if customer_id is None:
            await self.send_json({"type": "refused", "conversation": conversation_id})
            return
        self.viewing, self.viewing_customer = conversation_id, customer_id
        await self.channel_layer.group_add(group_for("conversation", conversation_id), self.channel_name)
        await self.channel_layer.group_add(group_for("customer", customer_id), self.channel_name)
        await self.send_json({"type": "viewing", "conversation": conversation_id})
        await self._announce_view()

    async def _announce_view(self) -> None:
        """Tell everyone viewing this thread (this tab too) who views it now."""
        if self.viewing is None:
            return
        await self.presence.view(self.viewing, self.channel_name, self.operator.pk, self.operator.label)
        await publish.viewers(conversation_id=self.viewing, viewers=await self.presence.viewers(self.viewing))

    # -- access ----------------------------------------------------------------------------------------

    async def _may_see(self, conversation_id: int, team_id: object = ANY_TEAM) -> bool:
        """Whether this operator may see the conversation now: cached per socket, see ``access``."""
        cached = self.access.get(conversation_id)
        if cached is not None and (team_id is ANY_TEAM or cached[0] == team_id):
            return cached[1]
        found = await database_sync_to_async(_visibility)(self.operator, conversation_id)
        self.access[conversation_id] = found if found is not None else (team_id, False)
        return found is not None

    async def _may_push_to_view(self, conversation_id: int, event: dict[str, Any]) -> bool:
        """Re-check access before a push to the viewed thread; leave its group when it is lost."""
        if conversation_id != self.viewing:
            return False
        if await self._may_see(conversation_id, event.get("team_id", ANY_TEAM)):
            return True
        await self._unview()
        await self.send_json({"type": "refused", "conversation": conversation_id})
        return False

    async def inbox_access(self, event: dict[str, Any]) -> None:
        """The operator's teams, flags or account changed: re-subscribe, or close if they may not sign in."""
        found = await database_sync_to_async(_reload)(self.operator.pk)
        if found is None:
            self.closing = True
            await self._leave_groups()
            await self.close(code=4403)
            return
        operator, groups, scope_of_reads = found
        for group in self.joined:
            if group not in groups:
                await self.channel_layer.group_discard(group, self.channel_name)
        for group in groups:
            if group not in self.joined:
                await self.channel_layer.group_add(group, self.channel_name)
        self.operator, self.joined, self.scope_of_reads = operator, groups, scope_of_reads
        self.access = {}
        # Pings not sent yet were collected under the old access; the page re-fetches its list anyway.
        self.list_pending, self.list_messages = {}, []
        if self.viewing is not None:
            await self._may_push_to_view(self.viewing, {})
        # The page re-fetches its list and thread: what it shows was chosen under the old access.
        await self.send_json({"type": "access"})

    async def _leave_groups(self) -> None:
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = []
        await self._unview()

    # -- from inbox.realtime.publish ----------------------------------------------------------------------

    def _first_time(self, event: dict[str, Any]) -> bool:
        event_id = event.get("event_id", "")
        if event_id in self.seen:
            return False
        self.seen.append(event_id)
        return True

    async def _fragment(self, event: dict[str, Any], render: Callable[..., str], pk: int, *args: Any) -> None:
        """Send ``render(pk, language, *args)``, rendered once per event in this process."""
        key = (event.get("event_id", ""), render.__name__, str(pk), self.language, *map(str, args))
        html = await _render_once(key, lambda: render(pk, self.language, *args))
        if html:
            await self.send(text_data=html)

    def _other_conversation(self, event: dict[str, Any]) -> bool:
        """The event is about another conversation of the customer whose thread this tab shows."""
        return (
            self.viewing is not None
            and event["conversation_id"] != self.viewing
            and event.get("customer_id") == self.viewing_customer
        )

    def _may_read(self, event: dict[str, Any], entry: dict[str, Any]) -> bool:
        return visibility.may_read(
            self.scope_of_reads, team_id=event.get("team_id"), kind=entry["kind"], direction=entry["direction"]
        )

    async def inbox_message(self, event: dict[str, Any]) -> None:
        """A conversation changed and/or has new entries (one event per unit of work)."""
        if not self._first_time(event):
            return
        conversation_id = event["conversation_id"]
        messages = event.get("messages", [])
        if await self._may_push_to_view(conversation_id, event):
            for message in messages:
                await self._fragment(event, render_new_message, message["id"])
            if event.get("changed"):
                await self._fragment(event, render_header, conversation_id, self.scope_of_reads)
        elif self._other_conversation(event):
            for message in messages:
                if self._may_read(event, message):
                    await self._fragment(event, render_other_new_message, message["id"], self.viewing)
        mine = event.get("assignee_id") == self.operator.pk
        if not (conversation_id == self.viewing or visibility.works_on(self.scope_of_reads, event.get("team_id"))):
            # Not a conversation of this operator's lists (as they may see them now): it came through
            # the customer's group, or through their own group for a conversation of a team they left.
            return
        self.list_pending[conversation_id] = None
        self.list_messages.extend({**message, "conversation": conversation_id, "mine": mine} for message in messages)
        del self.list_messages[:-LIST_MESSAGES_MAX]
        if self.list_timer is None:
            loop = asyncio.get_running_loop()
            wait = self.list_sent_at + _list_window() - loop.time()
            if wait <= 0:
                await self._send_list()
            else:
                self.list_timer = loop.call_later(wait, self._send_list_later)

    inbox_conversation = inbox_message

    def _send_list_later(self) -> None:
        self.list_task = asyncio.ensure_future(self._send_list())  # keep a reference while it runs

    async def _send_list(self) -> None:
        self.list_timer = None
        if not self.list_pending:
            return
        frame = {"type": "changed", "conversations": list(self.list_pending), "messages": self.list_messages}
        self.list_pending, self.list_messages = {}, []
        self.list_sent_at = asyncio.get_running_loop().time()
        with contextlib.suppress(Exception):  # the socket closed meanwhile: it re-fetches on reconnect
            await self.send_json(frame)

    async def inbox_message_status(self, event: dict[str, Any]) -> None:
        if not self._first_time(event):
            return
        if await self._may_push_to_view(event["conversation_id"], event):
            await self._fragment(event, render_message, event["message_id"])
        elif self._other_conversation(event) and self._may_read(event, event):
            await self._fragment(event, render_other_message, event["message_id"], self.viewing)

    async def inbox_presence(self, event: dict[str, Any]) -> None:
        if self._first_time(event):
            await self._fragment(event, render_presence, event["operator_id"])
            if event["operator_id"] == self.operator.pk:
                await self.send_json({"type": "presence", "presence": event["presence"]})

    async def inbox_assigned(self, event: dict[str, Any]) -> None:
        """A conversation was given to this operator: the page may show a desktop notification."""
        if (
            self._first_time(event)
            and event["operator_id"] == self.operator.pk
            and await self._may_see(event["conversation_id"])
        ):
            frame = await database_sync_to_async(assignment_frame)(event["conversation_id"], self.language)
            if frame:
                await self.send_json(frame)

    async def inbox_alert(self, event: dict[str, Any]) -> None:
        """A conversation this operator may see needs them (an SLA target missed)."""
        if (
            self._first_time(event)
            and event["operator_id"] == self.operator.pk
            and await self._may_see(event["conversation_id"])
        ):
            frame = await database_sync_to_async(alert_frame)(event["conversation_id"], event["kind"], self.language)
            if frame:
                await self.send_json(frame)

    async def inbox_viewers(self, event: dict[str, Any]) -> None:
        """Who else views the thread this socket shows (collision control); never the operator."""
        if await self._may_push_to_view(event["conversation_id"], event):
            others = [viewer["name"] for viewer in event["viewers"] if viewer["id"] != self.operator.pk]
            await self.send_json({"type": "viewers", "conversation": event["conversation_id"], "names": others})

    async def inbox_typing(self, event: dict[str, Any]) -> None:
        if event["operator_id"] != self.operator.pk and await self._may_push_to_view(event["conversation_id"], event):
            await self.send_json({"type": "typing", "conversation": event["conversation_id"], "name": event["name"]})
