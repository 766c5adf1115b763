"""Twilio Programmable Voice: the bot answers, hands off to browser operators, queues, voicemail.

Every voice webhook is verified and stored as an ``InboundEvent`` like any other, but answered
synchronously with TwiML (Twilio waits for the next instruction). The call becomes one entry in the
customer's thread (:mod:`connectors.twilio.calls`), updated by each later callback.

Flow (protocol facts: docs/connectors/twilio.md, "Twilio Voice"):

``voice`` greet (by name when known) + ``<Gather>`` → ``gather`` bot answer or hand-off
→ ``<Dial><Client>`` the team's online operators → ``dial-done`` answered: done; not answered:
``<Enqueue>`` with hold music (``queue-wait``) → after ``voicemail_after`` seconds a worker takes
the caller out of the queue to ``voicemail`` (or, failing that, the next ``queue-wait`` answers
``<Leave>`` → ``queue-left``) → ``<Record transcribe>`` → ``recorded`` / ``recording`` / ``transcription``.
``status`` (the call's status callback) and ``client-status`` (an operator's leg) fill in the entry.
``client`` is the TwiML App's Voice URL for calls placed from an operator's browser (take the next
caller from the queue, or call a customer back).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from connectors.twilio import calls
from connectors.twilio.common import TwilioConnector
from customers.models import Identity
from customers.services import InvalidAddress, normalise_phone
from inbox import assistant
from inbox.models import Channel, Conversation, InboundEvent, Message, Operator
from inbox.services import inbound
from inbox.transport import ConfigurationError, InvalidRequest, Parsed, PermanentError, register

logger = logging.getLogger(__name__)

# Words that always reach a person (docs/bot.md: an explicit request for a person is never bot-handled).
OPERATOR_WORDS = re.compile(
    r"\b(operator|agent|human|person|someone|representative|somebody|"
    r"оператор|человек|людина|اپراتور)\b",
    re.IGNORECASE,
)
DEFAULT_HOLD_MUSIC = "http://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3"
MAX_BOT_TURNS = 3
MAX_CLIENTS_PER_DIAL = 10
CLIENT_PREFIX = "client:"


def operator_identity(operator: Operator) -> str:
    """What ``<Client>`` dials and the browser registers as (an access token's identity)."""
    return f"operator-{operator.pk}"


def operator_from_identity(identity: str) -> Operator | None:
    identity = identity.removeprefix(CLIENT_PREFIX)
    if not identity.startswith("operator-") or not identity[9:].isdigit():
        return None
    return Operator.objects.filter(pk=int(identity[9:]), is_active=True).first()


def wants_a_person(speech: str) -> bool:
    return bool(OPERATOR_WORDS.search(speech)) or assistant.wants_a_person(speech)


def _form(request: HttpRequest) -> dict[str, str]:
    return {key: request.POST.get(key, "") for key in request.POST} if request.method == "POST" else {}


@register
class TwilioVoiceConnector(TwilioConnector):
    kind = "twilio-voice"
    label = "Twilio Voice"
    medium = "voice"
    endpoints = (
        "voice",
        "gather",
        "handoff",
        "dial-done",
        "client-status",
        "queue-wait",
        "queue-left",
        "bridged",
        "recorded",
        "recording",
        "transcription",
        "status",
        "client",
        "outbound-status",
        "outbound-done",
        "voicemail",
    )

    def refusal(self, *, conversation: Any, address: str) -> str:
        return _("A phone line cannot carry written replies; answer on SMS, WhatsApp or another channel.")

    def send(self, message: Any, address: str) -> Any:

        raise PermanentError(_("A phone line cannot carry written replies."))

    def webhook_paths(self) -> dict[str, str]:
        # What to paste into Twilio: the number's Voice URL and status callback, and the TwiML App's
        # Voice URL for browser operators. The other endpoints are named in our own TwiML.
        return {name: f"/hooks/{self.channel.key}/{name}/" for name in ("voice", "status", "client")}

    def url(self, endpoint: str, query: str = "") -> str:
        return f"{self.public_base_url()}/hooks/{self.channel.key}/{endpoint}/" + (f"?{query}" if query else "")

    # -- settings --------------------------------------------------------------------------

    def _int(self, key: str, default: int) -> int:
        value = self.setting(key)
        return int(value) if value.isdigit() else default

    @property
    def language(self) -> str:
        return self.setting("language") or "en-US"

    def say(self, node: Any, text: str) -> None:
        voice = self.setting("voice")
        node.say(text, language=self.language, **({"voice": voice} if voice else {}))

    # -- webhook ---------------------------------------------------------------------------

    def dedupe_key(self, request: HttpRequest, endpoint: str) -> str:
        form = _form(request)
        call = form.get("CallSid", "")
        if endpoint == "status":
            return f"status:{call}:{form.get('CallStatus', '')}:{form.get('SequenceNumber', '')}"
        if endpoint == "recording":
            return f"recording:{form.get('RecordingSid', '')}:{form.get('RecordingStatus', '')}"
        if endpoint == "transcription":
            return f"transcription:{form.get('TranscriptionSid', '') or call}"
        if endpoint == "voice":
            return f"voice:{call}"
        digest = hashlib.sha256(request.get_full_path().encode() + b"\n" + request.body).hexdigest()[:32]
        return f"{endpoint}:{call}:{digest}"

    def handle_webhook(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        if endpoint not in self.endpoints:
            raise InvalidRequest("unknown endpoint", status=404)
        self.verify(request, endpoint)
        form = _form(request)
        if not form.get("CallSid"):
            raise InvalidRequest("CallSid is missing")
        _event, first = inbound.record_inbound_event(
            channel=self.channel,
            endpoint=endpoint,
            dedupe_key=self.dedupe_key(request, endpoint),
            body=request.body,
            headers=self.headers_to_keep(request),
            content_type=request.content_type or "",
            # A call's answer (TwiML) needs the database: while it is down, a 503 (Twilio then
            # plays the fallback URL) rather than a spooled event for a call we could not answer.
            spool_when_down=False,
        )
        handler = getattr(self, "on_" + endpoint.replace("-", "_"))
        response: VoiceResponse = handler(form, request, first=first)
        return HttpResponse(str(response), content_type="text/xml; charset=utf-8")

    def parse(self, event: InboundEvent) -> Iterable[Parsed]:
        """The worker's view of a stored voice event: the first request makes sure the entry exists
        (the web process already created it while answering; this is the safety net)."""
        if event.endpoint != "voice":
            return
        from urllib.parse import parse_qs

        pairs = parse_qs(bytes(event.body).decode("utf-8", "replace"), keep_blank_values=True)
        form = {key: values[-1] for key, values in pairs.items()}
        if form.get("CallSid") and form.get("From") and not form["From"].startswith(CLIENT_PREFIX):
            yield calls.call_inbound(form)

    # -- the caller's path -------------------------------------------------------------------

    def on_voice(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        if form.get("From", "").startswith(CLIENT_PREFIX):
            return self.on_client(form, request, first=first)
        entry = calls.ensure_entry(self.channel, form)
        if entry is None:
            raise InvalidRequest("From is missing")
        conversation = Conversation.objects.filter(pk=entry.conversation_id).select_related("customer").first()
        name = conversation.customer.name if conversation else ""
        lines = []
        if name:
            lines.append(_("Hello %(name)s, thank you for calling.") % {"name": name.split()[0]})
        else:
            lines.append(_("Thank you for calling %(name)s.") % {"name": self.channel.team or self.channel.name})
        earlier = self._earlier_topic(conversation, entry.pk)
        if earlier:
            lines.append(_("I see your conversation about “%(topic)s” is still open.") % {"topic": earlier})
        lines.append(_("How can I help? Say operator, or press 0, to talk to a person."))
        greeting = " ".join(lines)
        response = VoiceResponse()
        gather = self._gather(turn=1)
        self.say(gather, greeting)
        response.append(gather)
        response.redirect(self.url("handoff"))
        if first:
            calls.update_call(self.channel, form, {"status": "in-progress"}, said=[{"who": "bot", "text": greeting}])
        return response

    def _earlier_topic(self, conversation: Conversation | None, call_entry_id: int) -> str:
        """What the customer's open conversation is about: its latest customer message, if any."""
        if conversation is None:
            return ""
        last = (
            conversation.messages.filter(direction="in", kind="message")
            .exclude(pk=call_entry_id)
            .order_by("-created_at")
            .values_list("text", flat=True)
            .first()
        )
        return " ".join((last or "").split())[:80]

    def _gather(self, *, turn: int) -> Gather:
        return Gather(
            input="speech dtmf",
            num_digits=1,
            action=self.url("gather", f"turn={turn}"),
            method="POST",
            timeout=5,
            speech_timeout="auto",
            language=self.language,
        )

    def on_gather(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        speech = form.get("SpeechResult", "").strip()
        digits = form.get("Digits", "").strip()
        turn = int(request.GET.get("turn", "1")) if request.GET.get("turn", "1").isdigit() else 1
        heard = speech or (_("pressed %(digits)s") % {"digits": digits} if digits else "")
        said = [{"who": "caller", "text": heard}] if heard else []
        wants_person = digits == "0" or wants_a_person(speech)
        answer = None
        if speech and not wants_person and turn <= MAX_BOT_TURNS:
            answer = assistant.spoken_answer(channel=self.channel, text=speech, language=self.language)
        response = VoiceResponse()
        if answer:
            said.append({"who": "bot", "text": answer})
            self.say(response, answer)
            gather = self._gather(turn=turn + 1)
            self.say(gather, _("Is there anything else? Say operator, or press 0, to talk to a person."))
            response.append(gather)
            self.say(response, _("Thank you for calling. Goodbye."))
            response.hangup()
            if first:
                calls.update_call(self.channel, form, {"bot_only": True}, said=said)
            return response
        if first:
            calls.update_call(self.channel, form, {"bot_only": False, "handoff": True}, said=said)
        if not wants_person and speech:
            self.say(response, _("Let me connect you with a colleague."))
        return self._handoff(response, form)

    def on_handoff(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        if first:
            calls.update_call(self.channel, form, {"bot_only": False, "handoff": True})
        return self._handoff(VoiceResponse(), form)

    def online_operators(self) -> list[Operator]:
        if self.channel.team_id is None:
            return []
        return list(
            Operator.objects.filter(
                teams=self.channel.team_id, presence=Operator.Presence.ONLINE, is_active=True
            ).order_by("presence_changed_at", "pk")[:MAX_CLIENTS_PER_DIAL]
        )

    def _handoff(self, response: VoiceResponse, form: dict[str, str]) -> VoiceResponse:
        """Ring every online operator of the team in the browser; nobody online: voicemail."""
        operators = self.online_operators()
        if not operators:
            self.say(response, _("Nobody can take your call right now."))
            return self._voicemail(response)
        self.say(response, _("Please wait while we connect you."))
        dial = Dial(
            timeout=self._int("ring_seconds", 20),
            action=self.url("dial-done"),
            method="POST",
            answer_on_bridge=True,
            **({"caller_id": form["From"]} if form.get("From", "").startswith("+") else {}),
        )
        for operator in operators:
            dial.client(
                operator_identity(operator),
                status_callback=self.url("client-status"),
                status_callback_event="answered completed",
                status_callback_method="POST",
            )
        response.append(dial)
        return response

    def on_dial_done(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        status = form.get("DialCallStatus", "")
        response = VoiceResponse()
        if status == "completed":
            if first:
                calls.update_call(self.channel, form, {"talk_seconds": form.get("DialCallDuration", "")})
            response.hangup()
            return response
        self.say(response, _("All our colleagues are busy. Please hold, or stay on the line to leave a message."))
        response.enqueue(
            self.queue_name(), wait_url=self.url("queue-wait"), wait_url_method="POST", action=self.url("queue-left")
        )
        if first:
            calls.update_call(self.channel, form, {"queued": True, "ring_result": status})
        return response

    def queue_name(self) -> str:
        return f"parley-{self.channel.pk}"

    def on_queue_wait(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        response = VoiceResponse()
        waited = int(form.get("QueueTime", "0") or 0) if (form.get("QueueTime") or "0").isdigit() else 0
        limit = self._int("voicemail_after", 60)
        if waited >= limit:
            response.leave()
            return response
        queue_sid = form.get("QueueSid", "")
        if first and queue_sid:
            self._schedule_voicemail_offer(form, queue_sid, after=limit - waited)
        position = form.get("QueuePosition", "")
        if position and position != "1":
            self.say(response, _("You are number %(position)s in line.") % {"position": position})
        response.play(self.setting("hold_music_url") or DEFAULT_HOLD_MUSIC)
        return response

    def on_queue_left(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        result = form.get("QueueResult", "")
        response = VoiceResponse()
        if result in ("bridged", "hangup", "redirected"):
            if result == "bridged":
                response.hangup()
            return response
        return self._voicemail(response)

    def _schedule_voicemail_offer(self, form: dict[str, str], queue_sid: str, *, after: int) -> None:
        """Twilio asks for hold music again only when the last clip ends, which may be minutes:
        a worker takes the caller out of the queue on time instead (once per call)."""
        from connectors.twilio.tasks import schedule_voicemail_offer  # a true cycle: the task calls this connector

        entry = Message.objects.filter(channel=self.channel, provider_id=form.get("CallSid", ""), kind="call").first()
        if entry is None or entry.metadata.get("call", {}).get("queue_sid"):
            return
        calls.update_call(self.channel, form, {"queue_sid": queue_sid}, create=False)
        channel_id, call_sid = self.channel.pk, form.get("CallSid", "")
        transaction.on_commit(lambda: schedule_voicemail_offer(channel_id, call_sid, queue_sid, after=after))

    def offer_voicemail(self, *, call_sid: str, queue_sid: str) -> str:
        """Move a caller still waiting in the queue to the voicemail prompt. Twilio dequeues only a
        call that is still a member, so a caller an operator just took is left alone."""
        from twilio.base.exceptions import TwilioRestException

        client = self.client()
        try:
            client.queues(queue_sid).members(call_sid).update(url=self.url("voicemail"), method="POST")
        except TwilioRestException as exc:
            if exc.status == 404:
                return "not-waiting"
            raise
        return "offered"

    def on_voicemail(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        """A caller taken out of the queue by :meth:`offer_voicemail`."""
        response = VoiceResponse()
        self.say(response, _("Sorry to keep you waiting."))
        return self._voicemail(response)

    def _voicemail(self, response: VoiceResponse) -> VoiceResponse:
        self.say(response, _("Please leave a message after the beep, and we will call you back."))
        response.record(
            max_length=self._int("voicemail_max_seconds", 120),
            play_beep=True,
            timeout=5,
            transcribe=True,
            transcribe_callback=self.url("transcription"),
            recording_status_callback=self.url("recording"),
            recording_status_callback_method="POST",
            action=self.url("recorded"),
            method="POST",
        )
        self.say(response, _("We did not receive a message. Goodbye."))
        response.hangup()
        return response

    def on_recorded(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        if first:
            calls.update_call(
                self.channel,
                form,
                {
                    "voicemail": True,
                    "recording_url": form.get("RecordingUrl", ""),
                    "recording_seconds": form.get("RecordingDuration", ""),
                },
            )
        response = VoiceResponse()
        self.say(response, _("Thank you. We will get back to you soon. Goodbye."))
        response.hangup()
        return response

    def on_recording(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        if first and form.get("RecordingStatus") == "completed":
            calls.update_call(
                self.channel,
                form,
                {
                    "recording_url": form.get("RecordingUrl", ""),
                    "recording_sid": form.get("RecordingSid", ""),
                    "recording_seconds": form.get("RecordingDuration", ""),
                },
            )
        return VoiceResponse()

    def on_transcription(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        if first and form.get("TranscriptionStatus") == "completed":
            calls.update_call(self.channel, form, {"transcript": form.get("TranscriptionText", "")})
        elif first:
            calls.update_call(self.channel, form, {"transcript_failed": True})
        return VoiceResponse()

    def on_status(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        if first and form.get("From", "").startswith(CLIENT_PREFIX):
            # The TwiML App's status callback: an operator's browser call ended.
            if form.get("CallStatus") in calls.TERMINAL:
                calls.finish_outbound(self.channel, form.get("CallSid", ""), ended_at=form.get("Timestamp", ""))
            return VoiceResponse()
        if first:
            sequence = form.get("SequenceNumber", "")
            changes = {"status": form.get("CallStatus", ""), "duration": form.get("CallDuration", "")}
            if form.get("CallStatus") in calls.TERMINAL:
                changes["ended_at"] = form.get("Timestamp", "")
            calls.update_call(self.channel, form, changes, sequence=int(sequence) if sequence.isdigit() else None)
        return VoiceResponse()

    # -- operators' legs ---------------------------------------------------------------------

    def on_client_status(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        """An operator's browser leg of a ``<Dial>``: who answered."""
        parent = form.get("ParentCallSid", "")
        operator = operator_from_identity(form.get("To", "") or form.get("Called", ""))
        if first and parent and operator and form.get("CallStatus") == "in-progress":
            parent_form = {**form, "CallSid": parent}
            calls.update_call(self.channel, parent_form, {"answered_by": str(operator), "operator_id": operator.pk})
        return VoiceResponse()

    def on_bridged(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        """Runs on the queued caller's leg as an operator takes them from the queue."""
        operator = operator_from_identity(request.GET.get("operator", ""))
        if first and operator is not None:
            calls.update_call(self.channel, form, {"answered_by": str(operator), "operator_id": operator.pk})
        response = VoiceResponse()
        self.say(response, _("You are now connected."))
        return response

    def on_client(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        """A call placed from an operator's browser: take the next caller, or call a customer."""
        response = VoiceResponse()
        operator = operator_from_identity(form.get("From", "") or form.get("Caller", ""))
        team_ok = operator is not None and (
            operator.is_staff or self.channel.team_id is None or operator.teams.filter(pk=self.channel.team_id).exists()
        )
        if not team_ok:
            self.say(response, _("You are not allowed to place calls on this line."))
            response.hangup()
            return response
        assert operator is not None  # noqa: S101 - team_ok implies an operator
        target = form.get("To", "").strip()
        if target in ("", "queue", f"queue:{self.queue_name()}"):
            dial = Dial()
            dial.queue(self.queue_name(), url=self.url("bridged", f"operator={operator.pk}"), method="POST")
            response.append(dial)
            return response
        try:
            number = normalise_phone(target)
        except InvalidAddress:
            self.say(response, _("That is not a phone number."))
            response.hangup()
            return response
        caller_id = self.setting("from_number")
        if not caller_id:
            self.say(response, _("This line has no caller ID configured (from_number)."))
            response.hangup()
            return response
        if first:
            try:
                calls.start_outbound(self.channel, form, operator=operator, number=number, caller_id=caller_id)
            except Exception:
                # The call itself must still go out; the thread misses its entry, and the log says why.
                logger.exception("could not record the browser call %s", form.get("CallSid", ""))
        recording = (
            {"record": "record-from-answer-dual", "recording_status_callback": self.url("recording")}
            if self.setting("record_calls").lower() in ("1", "true", "yes", "on")
            else {}
        )
        dial = Dial(
            caller_id=caller_id,
            answer_on_bridge=True,
            timeout=self._int("outbound_ring_seconds", 30),
            action=self.url("outbound-done"),
            method="POST",
            **recording,
        )
        dial.number(
            number,
            status_callback=self.url("outbound-status"),
            status_callback_event="ringing answered completed",
            status_callback_method="POST",
        )
        response.append(dial)
        return response

    def on_outbound_status(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        """The customer's leg of a call placed from the browser: ringing, answered, ended."""
        parent = form.get("ParentCallSid", "")
        status = form.get("CallStatus", "")
        if first and parent and status:
            changes: dict[str, Any] = {"status": status, "duration": form.get("CallDuration", "")}
            if status == "in-progress":
                changes["answered"] = True
            sequence = form.get("SequenceNumber", "")
            calls.update_call(
                self.channel,
                {**form, "CallSid": parent},
                changes,
                sequence=int(sequence) if sequence.isdigit() else None,
                create=False,
            )
        return VoiceResponse()

    def on_outbound_done(self, form: dict[str, str], request: HttpRequest, *, first: bool) -> VoiceResponse:
        """The ``<Dial>`` of a browser call is over: how it ended, how long they talked, the recording."""
        if first:
            status = form.get("DialCallStatus", "")
            changes: dict[str, Any] = {
                "status": status,
                "answered": status == "completed",
                "duration": form.get("DialCallDuration", ""),
            }
            if form.get("RecordingUrl"):
                changes.update(
                    recording_url=form["RecordingUrl"],
                    recording_sid=form.get("RecordingSid", ""),
                    recording_seconds=form.get("RecordingDuration", ""),
                )
            calls.update_call(self.channel, form, changes, create=False)
        response = VoiceResponse()
        response.hangup()
        return response


def customer_name_for(phone: str) -> str:
    """The name we know for a phone number ('' when unknown): for the operator's incoming-call popup."""
    try:
        value = normalise_phone(phone)
    except InvalidAddress:
        return ""
    identity = Identity.objects.select_related("customer").filter(kind="phone", value=value).first()
    return identity.customer.name if identity else ""


def voice_line_for(operator: Operator, pk: str | None = None) -> Channel | None:
    """The voice line the operator answers in the browser: the one asked for, else the first of their teams'."""
    channels = Channel.objects.filter(kind="twilio-voice", is_active=True).order_by("pk")
    if not operator.is_staff:
        channels = channels.filter(Q(team__in=operator.teams.all()) | Q(team__isnull=True))
    if pk:
        channels = channels.filter(pk=pk) if pk.isdigit() else channels.none()
    return channels.first()


def access_token(channel: Any, operator: Operator, *, ttl: int = 3600) -> str:
    """A Voice access token (JWT) for an operator's browser: receive calls as their identity, and
    place calls through the channel's TwiML App. Needs api_key_sid, api_key_secret, twiml_app_sid."""
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VoiceGrant

    connector = TwilioVoiceConnector(channel)
    key_sid, key_secret = connector.setting("api_key_sid"), connector.setting("api_key_secret")
    app_sid = connector.setting("twiml_app_sid")
    if not (key_sid and key_secret and app_sid):
        raise ConfigurationError("browser calls need api_key_sid, api_key_secret and twiml_app_sid on the channel")
    token = AccessToken(connector.account_sid, key_sid, key_secret, identity=operator_identity(operator), ttl=ttl)
    token.add_grant(VoiceGrant(outgoing_application_sid=app_sid, incoming_allow=True))
    jwt = token.to_jwt()
    return jwt.decode() if isinstance(jwt, bytes) else str(jwt)
