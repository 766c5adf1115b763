"""One Meta callback, split into the events it carries.

A callback is ``{"object": …, "entry": [...]}``; each entry carries ``changes`` (WhatsApp, and
Page/Instagram fields we do not handle) or ``messaging``/``standby`` events (Messenger and
Instagram). Each message, status or event becomes one :class:`Item`: the object type, the id that
routes it to a channel (``phone_number_id``, the Page id, the Instagram account id), its dedupe key
(the provider's id where it has one) and a small JSON body holding the event with the context it
needs (the contact's profile, the entry's id). The signature was checked on the raw callback before
it was split; each item is then stored, deduplicated and processed on its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

WHATSAPP = "whatsapp_business_account"
PAGE = "page"
INSTAGRAM = "instagram"
OBJECT_TYPES = (WHATSAPP, PAGE, INSTAGRAM)


@dataclass(frozen=True)
class Item:
    object_type: str
    route: str
    dedupe_key: str
    body: dict[str, Any]

    def encoded(self) -> bytes:
        return encode(self.body)


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON object of a payload, or an empty one when it is something else (or missing)."""
    return value if isinstance(value, dict) else {}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def digest(value: Any) -> str:
    return hashlib.sha256(encode({"v": value})).hexdigest()[:40]


def split(payload: Any) -> list[Item]:
    """Every event of a callback, in the order Meta wrote them. Never raises on odd shapes: what
    cannot be read is one item of object type ``""`` that fails visibly when processed."""
    if not isinstance(payload, dict):
        return [_unreadable(payload, "the callback is not a JSON object")]
    object_type = str(payload.get("object", ""))
    entries = payload.get("entry")
    if object_type not in OBJECT_TYPES:
        return [_unreadable(payload, f"unknown object type {object_type!r}")]
    if not isinstance(entries, list):
        return [_unreadable(payload, "the callback has no entry list")]
    items: list[Item] = []
    for entry in entries:
        if not isinstance(entry, dict):
            items.append(_unreadable(entry, "an entry is not a JSON object", object_type=object_type))
        elif object_type == WHATSAPP:
            items.extend(_whatsapp_entry(entry))
        else:
            items.extend(_page_entry(object_type, entry))
    return items


def _unreadable(value: Any, problem: str, *, object_type: str = "") -> Item:
    body = {"object": object_type, "problem": problem, "raw": value}
    return Item(object_type=object_type, route="", dedupe_key=f"unreadable:{digest(value)}", body=body)


# -- WhatsApp ---------------------------------------------------------------------------------------


def _whatsapp_entry(entry: dict[str, Any]) -> list[Item]:
    waba_id = str(entry.get("id", ""))
    items: list[Item] = []
    for change in entry.get("changes") or []:
        if not isinstance(change, dict):
            items.append(_unreadable(change, "a change is not a JSON object", object_type=WHATSAPP))
            continue
        field = str(change.get("field", ""))
        value = as_dict(change.get("value"))
        metadata = as_dict(value.get("metadata"))
        route = str(metadata.get("phone_number_id", ""))
        base: dict[str, Any] = {
            "object": WHATSAPP,
            "waba_id": waba_id,
            "field": field,
            "route": route,
            "metadata": metadata,
        }
        if field != "messages" or not route:
            # Template status updates, account and quality news: kept whole, on the receiving channel.
            body = {**base, "value": value}
            items.append(Item(WHATSAPP, route, f"wa:{field}:{digest(value)}"[:255], body))
            continue
        contacts = [c for c in value.get("contacts") or [] if isinstance(c, dict)]
        for message in value.get("messages") or []:
            if not isinstance(message, dict) or not message.get("id"):
                items.append(_unreadable(message, "a message without an id", object_type=WHATSAPP))
                continue
            sender = str(message.get("from", ""))
            mine = [c for c in contacts if sender and sender in (str(c.get("wa_id", "")), str(c.get("user_id", "")))]
            body = {**base, "contacts": mine or contacts[:1], "message": message}
            items.append(Item(WHATSAPP, route, f"wa:msg:{message['id']}"[:255], body))
        for status in value.get("statuses") or []:
            if not isinstance(status, dict) or not status.get("id"):
                items.append(_unreadable(status, "a status without an id", object_type=WHATSAPP))
                continue
            key = f"wa:status:{status['id']}:{status.get('status', '')}"
            items.append(Item(WHATSAPP, route, key[:255], {**base, "status": status}))
        if value.get("errors"):
            errors = value["errors"]
            items.append(Item(WHATSAPP, route, f"wa:errors:{digest(errors)}", {**base, "errors": errors}))
    return items


# -- Messenger and Instagram ---------------------------------------------------------------------------


def _page_entry(object_type: str, entry: dict[str, Any]) -> list[Item]:
    route = str(entry.get("id", ""))
    items: list[Item] = []
    for source in ("messaging", "standby"):
        for event in entry.get(source) or []:
            if not isinstance(event, dict):
                items.append(_unreadable(event, "a messaging event is not a JSON object", object_type=object_type))
                continue
            body = {"object": object_type, "route": route, "source": source, "event": event}
            items.append(Item(object_type, route, f"{object_type}:{event_key(event)}"[:255], body))
    for change in entry.get("changes") or []:
        # Comments, mentions and feed changes are not conversations here: recorded, then ignored.
        body = {"object": object_type, "route": route, "field": str(change.get("field", "")), "value": change}
        items.append(Item(object_type, route, f"{object_type}:change:{digest(change)}", body))
    return items


def event_key(event: dict[str, Any]) -> str:
    """The dedupe key of one messaging event: the message's ``mid`` where it has one."""
    sender = str((event.get("sender") or {}).get("id", ""))
    message = event.get("message")
    if isinstance(message, dict) and message.get("mid"):
        if message.get("is_deleted"):
            return f"deleted:{message['mid']}"
        return f"mid:{message['mid']}"
    postback = event.get("postback")
    if isinstance(postback, dict):
        return f"postback:{postback.get('mid') or digest([sender, event.get('timestamp'), postback])}"
    delivery = event.get("delivery")
    if isinstance(delivery, dict):
        return f"delivery:{sender}:{delivery.get('watermark', '')}:{digest(delivery.get('mids') or [])}"
    read = event.get("read")
    if isinstance(read, dict):
        return f"read:{sender}:{read.get('watermark') or read.get('mid', '')}"
    reaction = event.get("reaction")
    if isinstance(reaction, dict):
        return f"reaction:{reaction.get('mid', '')}:{reaction.get('action', '')}:{digest([sender, event.get('timestamp'), reaction])}"
    return f"event:{digest(event)}"
