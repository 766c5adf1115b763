"""One websocket per visitor's tab: ``/ws/webchat/<channel key>/``.

Only the channel's allowed origins may connect. The first frame is ``hello`` (with the visitor's
token and the last message id the tab has); then ``message``, ``typing``, ``delivered``, ``read``,
``identify`` and ``ping``. The socket joins its visitor's own group and nothing else: operators'
groups never reach it. See docs/connectors/webchat.md for every frame.
"""

from __future__ import annotations

import collections
import json
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from connectors.webchat import presence, protocol, push, selectors, sessions
from connectors.webchat.protocol import ProtocolError
from inbox.models import Channel


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


class WebchatConsumer(AsyncJsonWebsocketConsumer):
    channel: Channel
    visitor: str | None = None
    address: str = ""
    counted = False  # this socket is in its address's count (presence)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its hop to the one sync thread before every message (see
        :meth:`inbox.consumers.OperatorConsumer.dispatch`): database work here goes through
        ``database_sync_to_async``, which closes stale connections in its own thread."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        key = self.scope["url_route"]["kwargs"]["key"]
        channel = await database_sync_to_async(selectors.channel_by_key)(key)
        if channel is None or not protocol.origin_allowed(channel, _header(self.scope, b"origin")):
            await self.close(code=4403)
            return
        self.channel = channel
        self.address = sessions.client_address(self.scope.get("client"), _header(self.scope, b"x-forwarded-for"))
        self.session = sessions.Session(channel, self.address)
        self.sent: collections.deque[int] = collections.deque(maxlen=512)
        await self.accept()
        if not await presence.open_socket(channel.pk, self.address):
            # Accepted first, so that the browser sees the code and the reason (a refused
            # handshake shows it neither); the widget then stays on the sockets it has.
            await self.send_json(
                ProtocolError("too_many_sockets", "Too many chat windows are open from this network.").frame()
            )
            await self.close(code=presence.TOO_MANY_SOCKETS)
            return
        self.counted = True

    async def disconnect(self, code: int) -> None:
        if self.counted:
            self.counted = False
            await presence.close_socket(self.channel.pk, self.address)
        if self.visitor is not None:
            await self.channel_layer.group_discard(
                protocol.visitor_group(self.channel.pk, self.visitor), self.channel_name
            )
            await presence.visitor_left(self.channel.pk, self.visitor)

    async def _join(self, visitor: str) -> None:
        self.visitor = visitor
        await self.channel_layer.group_add(protocol.visitor_group(self.channel.pk, visitor), self.channel_name)
        await presence.visitor_here(self.channel.pk, visitor)

    # -- from the widget ---------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.counted:
            return  # closing: over the per-address cap
        if text_data is None:
            await self.send_json(ProtocolError("bad_frame", "Frames are JSON text.").frame())
            return
        if len(text_data) > protocol.limits().frame_bytes:
            await self.send_json(ProtocolError("too_large", "The frame is too large.", status=413).frame())
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            content = None
        if not isinstance(content, dict):
            await self.send_json(ProtocolError("bad_json", "A frame must be a JSON object.").frame())
            return
        try:
            answer, echo = await self.session.on_frame(content, self._join)
        except ProtocolError as error:
            extra = {}
            if content.get("type") == "message" and isinstance(content.get("client_msg_id"), str):
                extra["client_msg_id"] = content["client_msg_id"][:64]
            await self.send_json(error.frame(**extra))
            return
        if answer is not None:
            if answer["type"] == "welcome":
                self.sent.extend(sorted(self.session.have)[-256:])
                self.sent.extend(message["id"] for message in answer["messages"])
            elif answer["type"] == "ack":
                self.sent.append(answer["id"])
            await self.send_json(answer)
        if echo is not None and self.visitor is not None:
            # The visitor's other tabs show it too.
            await push.apush(
                self.channel.pk, self.visitor, {"type": "webchat.message", "message": echo, "skip": self.channel_name}
            )

    # -- from the connector and the visitor's other tabs ------------------------------------------------

    async def webchat_message(self, event: dict[str, Any]) -> None:
        message = event["message"]
        if event.get("skip") == self.channel_name or message["id"] in self.sent:
            return
        self.sent.append(message["id"])
        await self.send_json({"type": "message", "message": message})

    async def webchat_typing(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "typing", "name": event.get("name", "")})
