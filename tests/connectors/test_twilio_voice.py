"""Twilio Voice: the TwiML flow (asserted as XML), call entries in the thread, pretend calls."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jwt
import pytest
from django.urls import include, path

from config import urls as project_urls
from connectors.twilio.simulate import CallScript, place_call
from connectors.twilio.voice import TwilioVoiceConnector, operator_identity
from inbox.models import InboundEvent, Message, Operator
from inbox.services import conversations, inbound, outbound
from inbox.transport import InboundMessage
from tests.fakes.twilio import fixture, post_signed, twilio_channel


@pytest.fixture
def line(support):
    return twilio_channel("twilio-voice", team=support, voicemail_after="60", ring_seconds="15")


def voice_fixture(name: str) -> str:
    return dict(line.split(" ", 1) for line in fixture("voice.txt").splitlines())[name]


def twiml(response) -> ET.Element:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    return ET.fromstring(response.content)  # noqa: S314 - our own TwiML


def verbs(root: ET.Element) -> list[str]:
    return [child.tag for child in root]


def online(operator: Operator) -> Operator:
    return conversations.set_presence(operator=operator, presence="online")


def test_an_unknown_caller_is_greeted_and_asked_what_they_need(client, line):
    root = twiml(post_signed(client, line, "voice", voice_fixture("voice")))
    assert verbs(root) == ["Gather", "Redirect"]
    gather = root.find("Gather")
    assert gather.get("input") == "speech dtmf"
    assert gather.get("action") == f"https://inbox.example.test/hooks/{line.key}/gather/?turn=1"
    assert "press 0" in gather.find("Say").text
    assert root.find("Redirect").text.endswith(f"/hooks/{line.key}/handoff/")


def test_a_known_caller_is_greeted_by_name_and_reminded_of_their_open_conversation(client, line, sms):
    inbound.receive_message(
        channel=sms,
        inbound=InboundMessage(
            provider_id="x1", address="+15005550006", text="My order 1001 arrived broken", name="Alice Customer"
        ),
    )
    root = twiml(post_signed(client, line, "voice", voice_fixture("voice")))
    greeting = root.find("Gather/Say").text
    assert greeting.startswith("Hello Alice,")
    assert "My order 1001 arrived broken" in greeting


def test_every_call_is_one_entry_in_the_customers_thread(client, line, sms):
    text = inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="x1", address="+15005550006", text="Hi")
    )
    post_signed(client, line, "voice", voice_fixture("voice"))
    post_signed(client, line, "voice", voice_fixture("voice"))  # Twilio retried the request
    call = Message.objects.get(kind="call")
    assert call.conversation_id == text.conversation_id
    assert call.provider_id == "CA00000000000000000000000000000001"
    assert call.metadata["call"]["from"] == "+15005550006"
    assert InboundEvent.objects.filter(endpoint="voice").count() == 1


def test_pressing_0_rings_the_online_operators_of_the_team_in_the_browser(client, line, alice, bob):
    online(alice)
    online(bob)  # Sales: not this line's team
    post_signed(client, line, "voice", voice_fixture("voice"))
    body = voice_fixture("gather").replace(
        "SpeechResult=I+need+help+with+my+order.&Confidence=0.92&Digits=", "Digits=0"
    )
    root = twiml(post_signed(client, line, "gather", body, query="turn=1"))
    dial = root.find("Dial")
    assert dial.get("timeout") == "15"
    assert dial.get("action").endswith(f"/hooks/{line.key}/dial-done/")
    assert [c.text for c in dial.findall("Client")] == [operator_identity(alice)]


def test_asking_for_an_operator_hands_off_even_when_the_bot_could_answer(client, line, alice):
    online(alice)
    post_signed(client, line, "voice", voice_fixture("voice"))
    body = voice_fixture("gather").replace("I+need+help+with+my+order.", "Can+I+talk+to+an+operator")
    root = twiml(post_signed(client, line, "gather", body, query="turn=1"))
    assert "Dial" in verbs(root)


def test_without_a_confident_bot_answer_the_caller_is_handed_off(client, line, alice):
    online(alice)
    post_signed(client, line, "voice", voice_fixture("voice"))
    root = twiml(post_signed(client, line, "gather", voice_fixture("gather"), query="turn=1"))
    assert verbs(root)[-1] == "Dial"
    call = Message.objects.get(kind="call")
    assert call.metadata["call"]["said"][-1] == {"who": "caller", "text": "I need help with my order."}


def test_nobody_online_goes_straight_to_voicemail_with_transcription(client, line, alice):
    post_signed(client, line, "voice", voice_fixture("voice"))
    root = twiml(post_signed(client, line, "handoff", voice_fixture("gather")))
    record = root.find("Record")
    assert record is not None
    assert record.get("transcribe") == "true"
    assert record.get("transcribeCallback").endswith(f"/hooks/{line.key}/transcription/")
    assert record.get("recordingStatusCallback").endswith(f"/hooks/{line.key}/recording/")
    assert record.get("action").endswith(f"/hooks/{line.key}/recorded/")
    assert verbs(root)[-1] == "Hangup"


def test_an_unanswered_ring_puts_the_caller_in_the_queue_with_hold_music(client, line):
    post_signed(client, line, "voice", voice_fixture("voice"))
    root = twiml(post_signed(client, line, "dial-done", voice_fixture("dial-done")))
    enqueue = root.find("Enqueue")
    assert enqueue.text == f"parley-{line.pk}"
    assert enqueue.get("waitUrl").endswith(f"/hooks/{line.key}/queue-wait/")
    wait = twiml(post_signed(client, line, "queue-wait", voice_fixture("dial-done") + "&QueueTime=10&QueuePosition=2"))
    assert verbs(wait) == ["Say", "Play"]
    leave = twiml(post_signed(client, line, "queue-wait", voice_fixture("dial-done") + "&QueueTime=61&QueuePosition=1"))
    assert verbs(leave) == ["Leave"]
    left = twiml(post_signed(client, line, "queue-left", voice_fixture("dial-done") + "&QueueResult=leave"))
    assert "Record" in verbs(left)


def test_voicemail_recording_transcript_and_status_fill_in_the_call_entry(client, line):
    for name in ("voice", "recorded", "recording", "transcription", "status"):
        endpoint = name
        assert post_signed(client, line, endpoint, voice_fixture(name)).status_code == 200
    call = Message.objects.get(kind="call").metadata["call"]
    assert call["status"] == "completed"
    assert call["duration"] == "47"
    assert call["recording_url"].endswith("RE00000000000000000000000000000001")
    assert call["transcript"].startswith("Hi this is Alice")
    entry = Message.objects.get(kind="call")
    assert entry.text.startswith("Missed call, voicemail left · 0:47")
    assert "my order 1001 arrived broken" in entry.text


def test_status_callbacks_out_of_order_never_move_the_call_back(client, line):
    post_signed(client, line, "voice", voice_fixture("voice"))
    post_signed(client, line, "status", voice_fixture("status"))
    late = (
        voice_fixture("status")
        .replace("CallStatus=completed", "CallStatus=in-progress")
        .replace("SequenceNumber=3", "SequenceNumber=1")
    )
    post_signed(client, line, "status", late)
    assert Message.objects.get(kind="call").metadata["call"]["status"] == "completed"


def test_forged_voice_request_gets_403_and_no_twiml(client, line):
    response = post_signed(client, line, "voice", voice_fixture("voice"), signature="Zm9yZ2Vk")
    assert response.status_code == 403
    assert not InboundEvent.objects.exists()
    assert not Message.objects.exists()


def test_an_operator_takes_the_next_caller_from_the_browser(client, line, alice, bob):
    body = f"CallSid=CA9&AccountSid=AC00000000000000000000000000000001&From=client%3A{operator_identity(alice)}&To=queue&Direction=inbound"
    root = twiml(post_signed(client, line, "client", body))
    queue = root.find("Dial/Queue")
    assert queue.text == f"parley-{line.pk}"
    assert queue.get("url").endswith(f"/hooks/{line.key}/bridged/?operator={alice.pk}")
    refused = twiml(post_signed(client, line, "client", body.replace(operator_identity(alice), operator_identity(bob))))
    assert verbs(refused) == ["Say", "Hangup"]


def test_a_pretend_call_that_nobody_answers_leaves_a_voicemail_in_the_thread(line):
    log = place_call(
        channel=line, script=CallScript(says=["where is my parcel"], voicemail="Please call me back about order 1001")
    )
    assert ("caller", "where is my parcel") in log.lines
    assert ("beep", "") in log.lines
    call = Message.objects.get(kind="call")
    assert call.metadata["call"]["transcript"] == "Please call me back about order 1001"
    assert call.metadata["call"]["status"] == "completed"
    assert call.metadata["call"]["voicemail"] is True


def test_a_pretend_call_answered_by_an_operator_records_who_answered(line, alice):
    online(alice)
    log = place_call(channel=line, script=CallScript(says=["0"], answered_by=operator_identity(alice), talk_seconds=95))
    assert ("operator", operator_identity(alice)) in log.lines
    entry = Message.objects.get(kind="call")
    assert entry.metadata["call"]["answered_by"] == "Alice"
    assert entry.text.startswith("Call answered by Alice")


def test_voice_channel_prints_the_voice_status_and_browser_urls(line):
    urls = TwilioVoiceConnector(line).webhook_urls()
    assert set(urls) == {"voice", "status", "client"}


# -- the operator's browser (views mounted at /twilio/ by the project) ---------------------------

urlpatterns = [path("twilio/", include("connectors.twilio.urls")), *project_urls.urlpatterns]


@pytest.fixture
def browser_line(support):
    return twilio_channel(
        "twilio-voice",
        team=support,
        api_key_sid="SK00000000000000000000000000000001",
        api_key_secret="key-secret-0123456789abcdef0123456789",
        twiml_app_sid="AP00000000000000000000000000000001",
    )


@pytest.mark.urls(__name__)
def test_an_operator_gets_a_voice_token_for_their_teams_line(client, browser_line, alice):
    client.force_login(alice)
    response = client.get("/twilio/voice/token/")
    assert response.status_code == 200
    claims = jwt.decode(response.json()["token"], "key-secret-0123456789abcdef0123456789", algorithms=["HS256"])
    assert claims["grants"]["identity"] == operator_identity(alice)
    assert claims["grants"]["voice"]["incoming"] == {"allow": True}
    assert claims["grants"]["voice"]["outgoing"]["application_sid"] == "AP00000000000000000000000000000001"
    assert claims["iss"] == "SK00000000000000000000000000000001"


@pytest.mark.urls(__name__)
def test_no_token_for_another_teams_line_or_an_unconfigured_one(client, browser_line, line, bob, alice):
    client.force_login(bob)
    assert client.get("/twilio/voice/token/").status_code == 404
    client.force_login(alice)
    assert client.get("/twilio/voice/token/", {"channel": line.pk}).status_code == 503
    client.logout()
    assert client.get("/twilio/voice/token/").status_code == 302


def test_only_operators_with_a_voice_line_get_the_browser_phone(client, support, alice, bob):
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert 'id="softphone"' not in page
    assert "twilio.min.js" not in page
    twilio_channel("twilio-voice", team=support)
    page = client.get("/").content.decode()
    assert 'id="softphone"' in page
    assert "twilio.min.js" in page
    client.force_login(bob)  # another team's operator
    assert 'id="softphone"' not in client.get("/").content.decode()


@pytest.mark.urls(__name__)
def test_the_incoming_call_popup_names_a_known_caller(client, sms, alice):
    inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="x1", address="+15005550006", text="Hi", name="Alice Customer")
    )
    client.force_login(alice)
    who = client.get("/twilio/voice/caller/", {"number": "+1 500 555 0006"}).json()
    assert who["name"] == "Alice Customer"
    assert who["conversation_url"].startswith("/c/")
    assert client.get("/twilio/voice/caller/", {"number": "nonsense"}).status_code == 400


def test_call_details_render_who_answered_the_recording_and_the_transcript(client, line):
    from django.template.loader import render_to_string

    for name in ("voice", "recorded", "recording", "transcription", "status"):
        post_signed(client, line, name, voice_fixture(name))
    html = render_to_string("connectors/twilio/call_details.html", {"message": Message.objects.get(kind="call")})
    assert "47 seconds" in html
    assert f"/twilio/voice/recording/{Message.objects.get(kind='call').pk}/" in html
    assert "Hi this is Alice" in html


def test_a_written_reply_on_the_phone_line_is_refused_with_the_reason(client, line, alice):
    post_signed(client, line, "voice", voice_fixture("voice"))
    conversation = Message.objects.get(kind="call").conversation
    with pytest.raises(conversations.ReplyRefused, match="cannot carry written replies"):
        outbound.reply(conversation=conversation, text="Hello", by=alice)


@pytest.fixture
def confident_bot(settings):
    from django.utils import timezone

    from bot import encoders, knowledge
    from bot.encoders import TfidfEncoder
    from bot.models import Article, Calibration, ExampleQuestion

    settings.BOT_ENCODER = "tfidf"
    encoders.reset_encoders()
    knowledge.forget_indexes()
    questions = {
        "Delivery": ["where is my parcel", "when will my order be delivered", "track my delivery"],
        "Refunds": ["how do i get a refund", "i want my money back", "refund my order please"],
    }
    for title, texts in questions.items():
        article = Article.objects.create(title=title, answer=f"Here is how {title.lower()} works.")
        ExampleQuestion.objects.bulk_create([ExampleQuestion(article=article, text=t) for t in texts])
    Calibration.objects.create(
        encoder=TfidfEncoder().name, language="*", threshold=0.2, margin=0.0, computed_at=timezone.now()
    )
    yield
    encoders.reset_encoders()
    knowledge.forget_indexes()


def test_a_confident_bot_answers_the_caller_by_voice_and_asks_if_there_is_more(client, line, confident_bot):
    post_signed(client, line, "voice", voice_fixture("voice"))
    body = voice_fixture("gather").replace("I+need+help+with+my+order.", "where+is+my+parcel")
    root = twiml(post_signed(client, line, "gather", body, query="turn=1"))
    assert verbs(root) == ["Say", "Gather", "Say", "Hangup"]
    assert root.find("Say").text == "Here is how delivery works."
    assert root.find("Gather").get("action").endswith("/gather/?turn=2")
    said = Message.objects.get(kind="call").metadata["call"]["said"]
    assert said[-1] == {"who": "bot", "text": "Here is how delivery works."}


def test_asking_for_a_person_reaches_one_even_with_a_confident_bot(client, line, alice, confident_bot):
    online(alice)
    post_signed(client, line, "voice", voice_fixture("voice"))
    body = voice_fixture("gather").replace("I+need+help+with+my+order.", "where+is+my+parcel+I+want+a+human")
    assert "Dial" in verbs(twiml(post_signed(client, line, "gather", body, query="turn=1")))


# -- calls an operator places from the browser ------------------------------------------------------


@pytest.fixture
def dialing_line(support):
    return twilio_channel("twilio-voice", team=support, from_number="+15555550100")


def browser_call(operator, to: str = "+15005550006", sid: str = "CA0000000000000000000000000000b001") -> str:
    return (
        f"CallSid={sid}&AccountSid=AC00000000000000000000000000000001&From=client%3A{operator_identity(operator)}"
        f"&Caller=client%3A{operator_identity(operator)}&To={to.replace('+', '%2B')}&CallStatus=ringing"
        "&Direction=inbound&ApiVersion=2010-04-01"
    )


def customer_leg(status: str, sequence: int, duration: str = "") -> str:
    return (
        "CallSid=CA0000000000000000000000000000c001&ParentCallSid=CA0000000000000000000000000000b001"
        "&AccountSid=AC00000000000000000000000000000001&From=%2B15555550100&To=%2B15005550006"
        f"&Direction=outbound-dial&CallStatus={status}&SequenceNumber={sequence}&CallbackSource=call-progress-events"
        + (f"&CallDuration={duration}" if duration else "")
    )


def test_an_operator_calling_a_customer_from_the_browser_dials_them_and_starts_an_entry(
    client, dialing_line, sms, alice
):
    text = inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="x1", address="+15005550006", text="Call me please")
    )
    root = twiml(post_signed(client, dialing_line, "client", browser_call(alice)))
    dial = root.find("Dial")
    assert dial.get("callerId") == "+15555550100"
    assert dial.get("action") == f"https://inbox.example.test/hooks/{dialing_line.key}/outbound-done/"
    number = dial.find("Number")
    assert number.text == "+15005550006"
    assert number.get("statusCallback") == f"https://inbox.example.test/hooks/{dialing_line.key}/outbound-status/"
    assert number.get("statusCallbackEvent") == "ringing answered completed"
    assert dial.get("record") is None  # recording is off unless the line says so
    entry = Message.objects.get(kind="call")
    assert entry.conversation_id == text.conversation_id
    assert (entry.direction, entry.sender, entry.author) == ("out", "operator", alice)
    assert entry.status == ""  # never in the outbox
    assert entry.metadata["call"]["to"] == "+15005550006"
    assert entry.text == "Alice is calling the customer"
    # Twilio retried the request: still one entry.
    post_signed(client, dialing_line, "client", browser_call(alice))
    assert Message.objects.filter(kind="call").count() == 1


def test_status_callbacks_of_the_customers_leg_fill_in_the_browser_call_in_any_order(client, dialing_line, alice):
    post_signed(client, dialing_line, "client", browser_call(alice))
    post_signed(client, dialing_line, "outbound-status", customer_leg("ringing", 0))
    assert Message.objects.get(kind="call").metadata["call"]["status"] == "ringing"
    post_signed(client, dialing_line, "outbound-status", customer_leg("completed", 2, duration="95"))
    post_signed(client, dialing_line, "outbound-status", customer_leg("in-progress", 1))  # late
    done = (
        "CallSid=CA0000000000000000000000000000b001&AccountSid=AC00000000000000000000000000000001"
        f"&From=client%3A{operator_identity(alice)}&DialCallStatus=completed"
        "&DialCallSid=CA0000000000000000000000000000c001&DialCallDuration=95"
    )
    assert verbs(twiml(post_signed(client, dialing_line, "outbound-done", done))) == ["Hangup"]
    entry = Message.objects.get(kind="call")
    call = entry.metadata["call"]
    assert call["status"] == "completed"
    assert call["duration"] == "95"
    assert entry.text == "Call by Alice · 1:35"
    assert entry.conversation.customer.identities.get().value == "+15005550006"


def test_a_browser_call_nobody_picks_up_says_so(client, dialing_line, alice):
    post_signed(client, dialing_line, "client", browser_call(alice))
    post_signed(client, dialing_line, "outbound-status", customer_leg("no-answer", 1))
    done = (
        "CallSid=CA0000000000000000000000000000b001&AccountSid=AC00000000000000000000000000000001"
        "&DialCallStatus=no-answer&DialCallDuration=0"
    )
    post_signed(client, dialing_line, "outbound-done", done)
    assert Message.objects.get(kind="call").text == "Call by Alice, not answered (no-answer)"


def test_a_browser_call_hung_up_before_the_dial_ends_canceled(client, dialing_line, alice):
    post_signed(client, dialing_line, "client", browser_call(alice))
    status = (
        "CallSid=CA0000000000000000000000000000b001&AccountSid=AC00000000000000000000000000000001"
        f"&From=client%3A{operator_identity(alice)}&To=%2B15005550006&CallStatus=completed&CallDuration=3"
        "&SequenceNumber=1&Timestamp=Sat%2C+22+Nov+2025+17%3A30%3A52+%2B0000"
    )
    post_signed(client, dialing_line, "status", status)
    call = Message.objects.get(kind="call").metadata["call"]
    assert call["status"] == "canceled"
    assert call["ended_at"].startswith("Sat, 22 Nov 2025")


def test_a_recorded_browser_call_keeps_its_recording(client, support, alice):
    line = twilio_channel("twilio-voice", team=support, from_number="+15555550100", record_calls="true")
    dial = twiml(post_signed(client, line, "client", browser_call(alice))).find("Dial")
    assert dial.get("record") == "record-from-answer-dual"
    assert dial.get("recordingStatusCallback").endswith(f"/hooks/{line.key}/recording/")
    recording = (
        "AccountSid=AC00000000000000000000000000000001&CallSid=CA0000000000000000000000000000b001"
        "&RecordingSid=RE0000000000000000000000000000b001&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2F2010-04-01"
        "%2FAccounts%2FAC00000000000000000000000000000001%2FRecordings%2FRE0000000000000000000000000000b001"
        "&RecordingStatus=completed&RecordingDuration=80&RecordingChannels=2&RecordingSource=DialVerb"
    )
    post_signed(client, line, "recording", recording)
    entry = Message.objects.get(kind="call")
    assert entry.metadata["call"]["recording_url"].endswith("RE0000000000000000000000000000b001")
    from django.template.loader import render_to_string

    html = render_to_string("inbox/partials/message.html", {"message": entry, "customer": entry.customer})
    assert "Listen to the recording" in html
    assert "Called by" in html
    assert "msg-status" not in html  # a call is not a message waiting for delivery


def test_calling_a_new_number_opens_a_conversation_for_the_operator_who_called(client, dialing_line, alice):
    post_signed(client, dialing_line, "client", browser_call(alice, to="+15005550123"))
    entry = Message.objects.get(kind="call")
    assert entry.conversation.assignee == alice
    assert entry.conversation.team == dialing_line.team
    assert entry.customer.identities.get().value == "+15005550123"


def test_a_late_callback_for_an_unknown_browser_call_is_ignored(client, dialing_line, alice):
    assert post_signed(client, dialing_line, "outbound-status", customer_leg("completed", 2, "5")).status_code == 200
    assert not Message.objects.exists()


@pytest.mark.urls(__name__)
def test_a_customers_phone_number_has_a_call_button_for_the_browser_phone(client, sms, alice):
    message = inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="x1", address="+15005550006", text="Hi")
    )
    client.force_login(alice)
    page = client.get(f"/c/{message.conversation_id}/").content.decode()
    assert 'data-call-number="+15005550006"' in page


def test_after_a_call_the_reply_box_starts_on_a_channel_that_can_carry_text(client, line, sms, alice):
    inbound.receive_message(channel=sms, inbound=InboundMessage(provider_id="x1", address="+15005550006", text="Hi"))
    post_signed(client, line, "voice", voice_fixture("voice"))
    conversation = Message.objects.get(kind="call").conversation
    assert conversation.last_channel == line
    client.force_login(alice)
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert f'<option value="{sms.pk}" selected>' in page
    assert "cannot carry written replies" not in page


def test_operators_listen_to_a_recording_through_parley_with_the_accounts_credentials(client, support, alice, bob):
    from tests.fakes.twilio import running

    with running() as fake:
        line = twilio_channel("twilio-voice", team=support, api_base_url=fake.base_url)
        path = "/2010-04-01/Accounts/AC00000000000000000000000000000001/Recordings/RE00000000000000000000000000000001"
        fake.add_media(path + ".mp3", b"ID3-voicemail-bytes", "audio/mpeg")
        post_signed(client, line, "voice", voice_fixture("voice"))
        recorded = voice_fixture("recording").replace(
            "https%3A%2F%2Fapi.twilio.com", fake.base_url.replace(":", "%3A").replace("/", "%2F")
        )
        post_signed(client, line, "recording", recorded)
        entry = Message.objects.get(kind="call")
        client.force_login(alice)
        response = client.get(f"/twilio/voice/recording/{entry.pk}/")
        assert response.status_code == 200
        assert response["Content-Type"] == "audio/mpeg"
        assert b"".join(response.streaming_content) == b"ID3-voicemail-bytes"
        client.force_login(bob)  # another team
        assert client.get(f"/twilio/voice/recording/{entry.pk}/").status_code == 404
        client.logout()
        assert client.get(f"/twilio/voice/recording/{entry.pk}/").status_code == 302


def test_the_inbox_list_shows_how_the_latest_call_ended(client, dialing_line, alice):
    post_signed(client, dialing_line, "client", browser_call(alice))
    entry = Message.objects.get(kind="call")
    assert entry.conversation.last_message_preview == "Alice is calling the customer"
    post_signed(client, dialing_line, "outbound-status", customer_leg("completed", 2, duration="95"))
    entry.conversation.refresh_from_db()
    assert entry.conversation.last_message_preview == "Call by Alice · 1:35"


# -- the voicemail offer comes on time, whatever the length of the hold music ------------------------


def queue_wait(waited: int, queue_sid: str = "QU00000000000000000000000000000001") -> str:
    return voice_fixture("dial-done") + f"&QueueTime={waited}&QueuePosition=1&QueueSid={queue_sid}"


def test_a_worker_takes_a_caller_out_of_the_queue_to_voicemail_on_time(client, support):
    from tests.fakes.twilio import running

    with running() as fake:
        line = twilio_channel("twilio-voice", team=support, api_base_url=fake.base_url, voicemail_after="45")
        post_signed(client, line, "voice", voice_fixture("voice"))
        post_signed(client, line, "dial-done", voice_fixture("dial-done"))
        assert verbs(twiml(post_signed(client, line, "queue-wait", queue_wait(0)))) == ["Play"]
        call = Message.objects.get(kind="call").metadata["call"]
        assert call["queue_sid"] == "QU00000000000000000000000000000001"
        # What the worker does 45 seconds later (the task's body):
        assert (
            TwilioVoiceConnector(line).offer_voicemail(call_sid=call["sid"], queue_sid=call["queue_sid"]) == "offered"
        )
        [(queue_sid, call_sid, params)] = fake.dequeued
        assert (queue_sid, call_sid) == ("QU00000000000000000000000000000001", "CA00000000000000000000000000000001")
        assert params["Url"] == [f"https://inbox.example.test/hooks/{line.key}/voicemail/"]
        # Twilio then asks the voicemail URL for the caller's next instructions.
        root = twiml(post_signed(client, line, "voicemail", voice_fixture("dial-done")))
        assert root.find("Record").get("transcribe") == "true"
        # The Enqueue action reports the redirect; it adds nothing to what the caller hears.
        left = twiml(post_signed(client, line, "queue-left", voice_fixture("dial-done") + "&QueueResult=redirected"))
        assert verbs(left) == []


def test_a_caller_an_operator_already_took_is_not_sent_to_voicemail(client, support):
    from tests.fakes.twilio import running

    with running() as fake:
        line = twilio_channel("twilio-voice", team=support, api_base_url=fake.base_url)
        fake.left_queue.add("CA00000000000000000000000000000001")  # bridged a moment ago
        outcome = TwilioVoiceConnector(line).offer_voicemail(
            call_sid="CA00000000000000000000000000000001", queue_sid="QU00000000000000000000000000000001"
        )
        assert outcome == "not-waiting"
        assert not fake.dequeued


def test_an_operator_calling_a_customer_the_bot_was_answering_takes_the_conversation(client, dialing_line, sms, alice):
    sms.bot_enabled = True
    sms.save(update_fields=["bot_enabled"])
    text = inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="x1", address="+15005550006", text="Call me")
    )
    assert text.conversation.handler == "bot"
    post_signed(client, dialing_line, "client", browser_call(alice))
    text.conversation.refresh_from_db()
    assert text.conversation.handler == "human"
    assert text.conversation.assignee == alice
