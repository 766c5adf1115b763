"""The call entry in the customer's thread: one ``Message(kind="call")`` per CallSid, kept up to date.

Twilio reports a call piecemeal (the incoming request, what the caller said, who answered, the
recording, the transcript, status callbacks in any order); each piece is merged into the entry's
``metadata["call"]`` and its one-line summary through ``inbox.services.outbound.update_message`` (row
locked, broadcast on commit).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from inbox.models import Channel, Message
from inbox.services import inbound, outbound
from inbox.transport import InboundMessage

TERMINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def call_inbound(form: dict[str, str]) -> InboundMessage:
    """The entry for a call as first reported by Twilio (the Voice URL request)."""
    started = timezone.now().isoformat()
    call: dict[str, Any] = {
        "sid": form.get("CallSid", ""),
        "direction": form.get("Direction", "inbound"),
        "from": form.get("From", ""),
        "to": form.get("To", ""),
        "status": form.get("CallStatus", "ringing"),
        "started_at": started,
    }
    for key, name in (("FromCity", "city"), ("FromState", "state"), ("FromCountry", "country")):
        if form.get(key):
            call[name] = form[key]
    return InboundMessage(
        provider_id=form.get("CallSid", ""),
        address=form.get("From", ""),
        text=summary(call),
        name=form.get("CallerName", ""),
        kind=Message.Kind.CALL,
        metadata={"call": call},
    )


def ensure_entry(channel: Channel, form: dict[str, str]) -> Message | None:
    """The call's entry, created through the core's inbound path on first sight (idempotent).

    Only a caller's own call is created here; a call an operator placed from the browser has its
    entry from :func:`start_outbound`, and a late callback for an unknown one is ignored (None).
    """
    existing = Message.objects.filter(channel=channel, provider_id=form.get("CallSid", "")).first()
    if existing is not None:
        return existing
    caller = form.get("From", "")
    if not caller or caller.startswith("client:"):
        return None
    return inbound.receive_message(channel=channel, inbound=call_inbound(form))


def start_outbound(channel: Channel, form: dict[str, str], *, operator: Any, number: str, caller_id: str) -> Message:
    """The entry for a call an operator places from the browser (the TwiML App's request)."""
    call: dict[str, Any] = {
        "sid": form.get("CallSid", ""),
        "direction": "outbound",
        "from": caller_id,
        "to": number,
        "status": "initiated",
        "started_at": timezone.now().isoformat(),
        "placed_by": str(operator),
        "operator_id": operator.pk,
    }
    return outbound.record_outbound_entry(
        channel=channel,
        address=number,
        kind=Message.Kind.CALL,
        provider_id=call["sid"],
        text=summary(call),
        metadata={"call": call},
        by=operator,
    )


def finish_outbound(channel: Channel, sid: str, *, ended_at: str) -> Message | None:
    """The operator's browser leg ended: a call that never got further than dialling was canceled."""
    entry = Message.objects.filter(channel=channel, provider_id=sid, kind=Message.Kind.CALL).first()
    if entry is None:
        return None

    def change(metadata: dict[str, Any]) -> tuple[dict[str, Any], str]:
        call = dict(metadata.get("call", {}))
        if call.get("status") not in TERMINAL:
            call["status"] = "canceled"
        if ended_at:
            call.setdefault("ended_at", ended_at)
        return {**metadata, "call": call}, summary(call)

    return outbound.update_message(message_id=entry.pk, change=change)


def update_call(
    channel: Channel,
    form: dict[str, str],
    changes: dict[str, Any],
    *,
    said: list[dict[str, str]] | None = None,
    sequence: int | None = None,
    create: bool = True,
) -> Message | None:
    """Merge ``changes`` into the call entry. A status with a lower SequenceNumber than one already
    applied, or any status after a terminal one, is ignored: callbacks arrive out of order.
    ``create=False`` leaves a call we have no entry for alone (a browser call's later legs)."""
    if create:
        entry = ensure_entry(channel, form)
    else:
        entry = Message.objects.filter(channel=channel, provider_id=form.get("CallSid", ""), kind="call").first()
    if entry is None:
        return None

    def change(metadata: dict[str, Any]) -> tuple[dict[str, Any], str]:
        call = dict(metadata.get("call", {}))
        wanted = dict(changes)
        if "status" in wanted:
            stale = sequence is not None and sequence < int(call.get("sequence", -1))
            if stale or (call.get("status") in TERMINAL and wanted["status"] not in TERMINAL):
                wanted.pop("status")
                wanted.pop("duration", None)
            elif sequence is not None:
                wanted["sequence"] = sequence
        call.update({k: v for k, v in wanted.items() if v not in (None, "")})
        if said:
            call["said"] = [*call.get("said", []), *said][-40:]
        return {**metadata, "call": call}, summary(call)

    return outbound.update_message(message_id=entry.pk, change=change)


def _duration(seconds: Any) -> str:
    try:
        total = int(seconds)
    except (TypeError, ValueError):
        return ""
    if total <= 0:
        return ""
    return f"{total // 60}:{total % 60:02d}"


def summary(call: dict[str, Any]) -> str:
    """One line for the thread and the inbox list: what happened on the call."""
    parts = []
    status = call.get("status", "")
    if call.get("direction") == "outbound":
        values = {"name": call.get("placed_by", ""), "status": status}
        if status in ("initiated", "queued", "ringing"):
            parts.append(_("%(name)s is calling the customer") % values)
        elif status == "in-progress":
            parts.append(_("%(name)s is on a call with the customer") % values)
        elif status == "completed" and call.get("answered", True):
            parts.append(_("Call by %(name)s") % values)
        else:
            parts.append(_("Call by %(name)s, not answered (%(status)s)") % values)
    elif call.get("answered_by"):
        parts.append(_("Call answered by %(name)s") % {"name": call["answered_by"]})
    elif call.get("voicemail") or call.get("recording_url"):
        parts.append(_("Missed call, voicemail left"))
    elif status in TERMINAL and status != "completed":
        parts.append(_("Missed call (%(status)s)") % {"status": status})
    elif status == "completed" and call.get("bot_only"):
        parts.append(_("Call handled by the bot"))
    elif status == "completed":
        parts.append(_("Call ended"))
    else:
        parts.append(_("Incoming call"))
    length = _duration(call.get("duration"))
    if length:
        parts.append(length)
    text = " · ".join(parts)
    if call.get("transcript"):
        text += " — “" + str(call["transcript"])[:400] + "”"
    return text
