"""Place a pretend call that walks our real TwiML flow, as Twilio would, without a Twilio account.

:func:`walk_call` plays Twilio: it posts signed form requests to the voice endpoints, reads the
TwiML we answer and follows it (``<Gather>`` gets the caller's next words, ``<Redirect>``,
``<Dial>`` rings and is answered or not, ``<Enqueue>`` waits until ``<Leave>``, ``<Record>`` leaves
a voicemail with a transcript, ``<Hangup>`` ends), then sends the final status callback. The same
walker drives the tests' Twilio stand-in over HTTP; :func:`place_call` runs it in-process through
the webhook view, for ``manage.py simulate call``.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.http import HttpResponse
from django.test import RequestFactory
from twilio.request_validator import RequestValidator

from connectors.twilio.voice import TwilioVoiceConnector
from inbox.models import Channel, Team
from inbox.services import channels
from inbox.views.webhooks import webhook

Post = Callable[[str, dict[str, str]], str]
MAX_STEPS = 60


@dataclass
class CallScript:
    """What the pretend caller does. ``says`` are answers to successive ``<Gather>`` (digits or words)."""

    caller: str = "+15005550006"
    called: str = "+15555550100"
    says: list[str] = field(default_factory=list)
    # Who picks up when we ``<Dial>`` browser operators: an identity (``operator-7``) or "" for nobody.
    answered_by: str = ""
    talk_seconds: int = 42
    voicemail: str = ""
    call_sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))


@dataclass
class CallLog:
    """What happened: (who, text) lines, every request made, and the final TwiML documents."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    outcome: str = ""


def walk_call(*, post: Post, voice_url: str, status_url: str, script: CallScript, account_sid: str) -> CallLog:
    log = CallLog()
    says = list(script.says)
    base = {
        "CallSid": script.call_sid,
        "AccountSid": account_sid,
        "From": script.caller,
        "To": script.called,
        "Caller": script.caller,
        "Called": script.called,
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    sequence = 0

    def request(url: str, extra: dict[str, str], *, status: str = "in-progress") -> ET.Element:
        params = {**base, "CallStatus": status, **extra}
        log.requests.append((url, params))
        document = post(url, params)
        log.documents.append(document)
        return ET.fromstring(document)  # noqa: S314 - our own server's answer

    def callback(url: str, extra: dict[str, str]) -> None:
        if url:
            params = {**base, **extra}
            log.requests.append((url, params))
            post(url, params)

    document = request(voice_url, {}, status="ringing")
    duration = 0
    steps = 0
    verbs = list(document)
    while verbs and steps < MAX_STEPS:
        steps += 1
        verb = verbs.pop(0)
        tag = verb.tag
        if tag == "Say":
            log.lines.append(("bot", verb.text or ""))
            duration += 3
        elif tag == "Play":
            log.lines.append(("music", verb.text or ""))
        elif tag == "Gather":
            for inner in verb:
                if inner.tag == "Say":
                    log.lines.append(("bot", inner.text or ""))
            if not says:
                continue  # nothing said: Twilio goes on with the next verb
            words = says.pop(0)
            log.lines.append(("caller", words))
            extra = {"Digits": words} if words.isdigit() else {"SpeechResult": words, "Confidence": "0.92"}
            verbs = list(request(verb.get("action", ""), extra))
        elif tag == "Redirect":
            verbs = list(request(verb.text or "", {}))
        elif tag == "Dial":
            verbs = _dial(verb, verbs, script, log, request, callback)
            if script.answered_by and any(child.tag == "Client" for child in verb):
                duration += script.talk_seconds
        elif tag == "Enqueue":
            verbs = _enqueue(verb, log, request)
        elif tag == "Record":
            verbs = _record(verb, script, log, request, callback)
        elif tag in ("Hangup", "Reject"):
            break
        elif tag == "Leave":
            continue
    sequence += 1
    callback(
        status_url,
        {
            "CallStatus": "completed",
            "CallDuration": str(duration),
            "Duration": str(max(1, duration // 60)),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(sequence),
        },
    )
    log.outcome = "completed"
    return log


def _dial(
    verb: ET.Element, rest: list[ET.Element], script: CallScript, log: CallLog, request: Any, callback: Any
) -> list[ET.Element]:
    clients = [child for child in verb if child.tag == "Client"]
    names = [(child.text or "").strip() for child in clients]
    log.lines.append(("ring", ", ".join(names)))
    answered = script.answered_by if script.answered_by in names else ""
    for child in clients:
        if (child.text or "").strip() == answered:
            callback(
                child.get("statusCallback", ""),
                {
                    "CallSid": "CA" + secrets.token_hex(16),
                    "ParentCallSid": script.call_sid,
                    "To": f"client:{answered}",
                    "Called": f"client:{answered}",
                    "Direction": "outbound-dial",
                    "CallStatus": "in-progress",
                },
            )
    action = verb.get("action", "")
    if answered:
        log.lines.append(("operator", answered))
        extra = {"DialCallStatus": "completed", "DialCallDuration": str(script.talk_seconds)}
    else:
        extra = {"DialCallStatus": "no-answer", "DialCallDuration": "0"}
    if not action:
        return rest
    return list(request(action, extra))


def _enqueue(verb: ET.Element, log: CallLog, request: Any) -> list[ET.Element]:
    wait_url, action = verb.get("waitUrl", ""), verb.get("action", "")
    waited = 0
    for _round in range(20):
        # No QueueSid: a pretend call has no queue at Twilio a worker could take it out of, so the
        # hold music's own check (the next wait request after voicemail_after) decides.
        music = list(request(wait_url, {"QueueTime": str(waited), "QueuePosition": "1"}))
        if any(item.tag == "Leave" for item in music):
            break
        for item in music:
            if item.tag in ("Say", "Play"):
                log.lines.append(("bot" if item.tag == "Say" else "music", item.text or ""))
        waited += 30
    return list(request(action, {"QueueResult": "leave", "QueueTime": str(waited)})) if action else []


def _record(verb: ET.Element, script: CallScript, log: CallLog, request: Any, callback: Any) -> list[ET.Element]:
    log.lines.append(("beep", ""))
    if not script.voicemail:
        return []
    log.lines.append(("caller", script.voicemail))
    recording_sid = "RE" + secrets.token_hex(16)
    recording_url = f"https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/{recording_sid}"
    seconds = str(max(3, len(script.voicemail.split()) // 2))
    recorded = {"RecordingSid": recording_sid, "RecordingUrl": recording_url, "RecordingDuration": seconds}
    following = list(request(verb.get("action", ""), {**recorded, "Digits": "hangup"})) if verb.get("action") else []
    callback(verb.get("recordingStatusCallback", ""), {**recorded, "RecordingStatus": "completed"})
    callback(
        verb.get("transcribeCallback", ""),
        {
            "TranscriptionSid": "TR" + secrets.token_hex(16),
            "TranscriptionText": script.voicemail,
            "TranscriptionStatus": "completed",
            "RecordingSid": recording_sid,
            "RecordingUrl": recording_url,
        },
    )
    return following


# -- in-process (the simulate command) ------------------------------------------------------------


def in_process_poster(channel: Channel) -> Post:
    """Sign like Twilio and call the webhook view directly (no server needed)."""

    connector = TwilioVoiceConnector(channel)
    validator = RequestValidator(connector.auth_token())

    def post(url: str, params: dict[str, str]) -> str:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        signed_url = connector.public_base_url() + path
        request = RequestFactory().post(
            path,
            data=urlencode(params),
            content_type="application/x-www-form-urlencoded",
            headers={"X-Twilio-Signature": validator.compute_signature(signed_url, params)},
        )
        segments = [s for s in parts.path.split("/") if s]
        response: HttpResponse = webhook(request, key=segments[1], endpoint=segments[2])
        if response.status_code >= 400:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.content.decode()[:200]}")
        return response.content.decode()

    return post


def demo_voice_channel() -> Channel:
    """A voice channel for the demo, with made-up credentials (it never talks to Twilio)."""

    channel = Channel.objects.filter(kind="twilio-voice", is_active=True).order_by("pk").first()
    if channel is None:
        channel = channels.create_channel(
            kind="twilio-voice",
            name="Phone (simulated)",
            team=Team.objects.order_by("pk").first(),
            channel_settings={
                "account_sid": "AC" + "0" * 32,
                "auth_token": secrets.token_hex(16),
                "from_number": "+15555550100",
                "simulated": True,
            },
        )
    return channel


def place_call(*, script: CallScript, channel: Channel | None = None) -> CallLog:
    """Play a customer calling the (demo) voice line; returns what was said and done."""

    channel = channel or demo_voice_channel()
    connector = TwilioVoiceConnector(channel)
    urls = {name: connector.url(name) for name in ("voice", "status")}
    return walk_call(
        post=in_process_poster(channel),
        voice_url=urls["voice"],
        status_url=urls["status"],
        script=script,
        account_sid=connector.account_sid,
    )
