"""Customer satisfaction: asked once when a conversation is resolved, on the customer's channel (buttons
where it has them, a numbered text elsewhere, a signed link in email); the answer and its comment land
in the thread without reopening it, and in the reports. Through the simulator on every medium (its
webhook, the stored event, the worker's processing); the survey is asked as the worker's task asks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from connectors import simulator
from desk import csat, tasks
from desk.models import CsatResponse, TeamSettings
from desk.selectors import csat_summary
from inbox.models import Conversation, InboundEvent, Message
from inbox.services import channels, conversations, inbound, outbound
from reports import rollups
from tests.conftest import PASSWORD, wait_for

BUTTON_MEDIA = ["whatsapp", "telegram", "viber", "messenger", "webchat"]
ADDRESSES = {
    "sms": "+15005550106",
    "whatsapp": "+15005550107",
    "telegram": "70001",
    "viber": "viber-user-1",
    "messenger": "psid-1",
    "webchat": "visitor-1",
    "email": "dora@example.test",
}


@pytest.fixture
def csat_on(support) -> TeamSettings:
    return TeamSettings.objects.create(team=support, csat_enabled=True)


def channel_of(medium, team):
    return channels.create_channel(
        kind="simulator", name=f"Sim {medium}", team=team, channel_settings={"medium": medium}
    )


def process_pending():
    """What the worker does with every stored event, in the order they were stored."""
    for event in InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).order_by("pk"):
        inbound.process_inbound_event(event_id=event.pk)


def customer_says(channel, text, *, choice="", address=""):
    address = address or ADDRESSES[channel.medium]
    response = simulator.customer_says(channel=channel, address=address, text=text, choice=choice)
    assert response.status_code == 200, response.content
    process_pending()
    return Message.objects.filter(direction=Message.Direction.INBOUND).latest("pk")


def resolved_conversation(channel, by, address=""):
    message = customer_says(channel, "My parcel is late", address=address)
    conversation = message.conversation
    outbound.reply(conversation=conversation, text="It ships today.", by=by)
    conversations.resolve_conversation(conversation=conversation, by=by)
    conversation.refresh_from_db()
    return conversation


def survey_of(conversation):
    return Message.objects.filter(conversation=conversation, metadata__has_key="csat").order_by("pk").first()


def activities(conversation, action):
    return [
        m.metadata
        for m in Message.objects.filter(conversation=conversation, kind=Message.Kind.ACTIVITY).order_by("pk")
        if m.metadata.get("action") == action
    ]


# -- asking ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("medium", BUTTON_MEDIA)
def test_a_channel_with_buttons_gets_the_question_with_five_choices(support, alice, csat_on, medium):
    channel = channel_of(medium, support)
    conversation = resolved_conversation(channel, alice)

    response = csat.ask(conversation_id=conversation.pk)

    survey = survey_of(conversation)
    assert response is not None
    assert response.survey == survey
    assert survey.channel == channel
    assert survey.sender == Message.Sender.SYSTEM
    assert survey.text == "How would you rate our help?"
    assert [c["id"] for c in survey.metadata["choices"]] == ["csat:5", "csat:4", "csat:3", "csat:2", "csat:1"]
    assert response.operator == alice
    assert response.team == support
    assert response.channel == channel


def test_sms_gets_a_numbered_text_and_no_buttons(support, alice, sms, csat_on):
    conversation = resolved_conversation(sms, alice)

    csat.ask(conversation_id=conversation.pk)

    survey = survey_of(conversation)
    assert "Reply with a number from 1 to 5" in survey.text
    assert "choices" not in survey.metadata


def test_the_team_s_own_question_is_asked(support, alice, sms):
    TeamSettings.objects.create(team=support, csat_enabled=True, csat_question="Did Parley Post help you today?")
    conversation = resolved_conversation(sms, alice)

    csat.ask(conversation_id=conversation.pk)

    assert survey_of(conversation).text.startswith("Did Parley Post help you today?\n")


def test_a_team_without_csat_is_not_asked(support, alice, sms):
    TeamSettings.objects.create(team=support, csat_enabled=False)
    conversation = resolved_conversation(sms, alice)

    assert csat.ask(conversation_id=conversation.pk) is None
    assert survey_of(conversation) is None


def test_the_survey_is_asked_once_whatever_happens_again(support, alice, sms, csat_on):
    conversation = resolved_conversation(sms, alice)
    assert csat.ask(conversation_id=conversation.pk) is not None
    assert csat.ask(conversation_id=conversation.pk) is None  # a re-delivered task

    conversations.reopen_conversation(conversation=conversation, by=alice)
    conversations.resolve_conversation(conversation=conversation, by=alice)
    tasks.ask_csat(conversation.pk)

    assert Message.objects.filter(conversation=conversation, metadata__has_key="csat").count() == 1
    assert CsatResponse.objects.count() == 1


def test_a_conversation_reopened_before_the_worker_asks_is_not_asked(support, alice, sms, csat_on):
    conversation = resolved_conversation(sms, alice)
    conversations.reopen_conversation(conversation=conversation, by=alice)

    assert csat.ask(conversation_id=conversation.pk) is None
    assert not CsatResponse.objects.exists()


def test_not_asked_when_the_bot_alone_handled_it_unless_the_team_wants_it(support, alice, sms, csat_on):
    message = customer_says(sms, "When do you open?")
    conversation = message.conversation
    Conversation.objects.filter(pk=conversation.pk).update(handler=Conversation.Handler.BOT)
    outbound.reply(conversation=conversation, text="At 9.", by=None, sender=Message.Sender.BOT)
    conversations.resolve_conversation(conversation=conversation, by=None)

    assert csat.ask(conversation_id=conversation.pk) is None

    csat_on.csat_skip_bot_only = False
    csat_on.save()
    assert csat.ask(conversation_id=conversation.pk) is not None


def test_the_survey_goes_on_the_channel_of_the_customer_s_last_message(support, alice, sms, csat_on):
    telegram = channel_of("telegram", support)
    first = customer_says(sms, "Hi")
    Message.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    # The same person on Telegram: their identity is linked to the customer.
    first.customer.identities.create(kind="telegram", value=ADDRESSES["telegram"])
    customer_says(telegram, "Any news?")
    conversation = first.conversation
    conversations.resolve_conversation(conversation=conversation, by=alice)

    csat.ask(conversation_id=conversation.pk)

    assert survey_of(conversation).channel == telegram


def test_a_refused_survey_is_noted_and_not_tried_again(support, alice, sms, csat_on):
    conversation = resolved_conversation(sms, alice)
    type(sms).objects.filter(pk=sms.pk).update(is_active=False)

    response = csat.ask(conversation_id=conversation.pk)

    assert response is not None
    assert response.survey is None
    response.refresh_from_db()
    assert "switched off" in response.skipped
    assert activities(conversation, "csat_not_sent")
    assert csat.ask(conversation_id=conversation.pk) is None


# -- answering -------------------------------------------------------------------------------------


@pytest.mark.parametrize("medium", BUTTON_MEDIA)
def test_a_tap_is_recorded_and_keeps_the_conversation_resolved(support, alice, csat_on, medium):
    channel = channel_of(medium, support)
    conversation = resolved_conversation(channel, alice)
    csat.ask(conversation_id=conversation.pk)

    tap = customer_says(channel, "🙂 4", choice="csat:4")

    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.RESOLVED
    assert conversation.waiting_since is None
    assert tap.conversation == conversation
    assert tap.metadata["held"] == "csat_score"
    response = CsatResponse.objects.get()
    assert response.score == 4
    assert response.answered_at is not None
    assert [a["score"] for a in activities(conversation, "csat_rated")] == [4]


def test_a_bare_number_on_sms_is_the_score_and_the_next_text_its_comment(support, alice, sms, csat_on):
    conversation = resolved_conversation(sms, alice)
    csat.ask(conversation_id=conversation.pk)

    customer_says(sms, "2")
    customer_says(sms, "The courier never rang the bell.")

    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.RESOLVED
    response = CsatResponse.objects.get()
    assert (response.score, response.comment) == (2, "The courier never rang the bell.")
    assert activities(conversation, "csat_comment")[0]["comment"] == "The courier never rang the bell."
    thanks = Message.objects.filter(conversation=conversation, direction="out").latest("pk")
    assert thanks.text.startswith("Thank you!")
    assert thanks.channel == sms


def test_a_face_is_a_score_too(support, alice, sms, csat_on):
    conversation = resolved_conversation(sms, alice)
    csat.ask(conversation_id=conversation.pk)

    customer_says(sms, "😀")

    assert CsatResponse.objects.get().score == 5


@pytest.mark.parametrize(("typed", "score"), [("۴", 4), ("٣", 3), ("2.", 2)])
def test_a_digit_of_any_script_is_a_score(support, alice, sms, csat_on, typed, score):
    conversation = resolved_conversation(sms, alice)
    csat.ask(conversation_id=conversation.pk)

    customer_says(sms, typed)  # Persian and Arabic keyboards type their own digits

    assert CsatResponse.objects.get().score == score


def test_a_message_that_is_no_answer_reopens_the_conversation_as_always(support, alice, sms, csat_on):
    conversation = resolved_conversation(sms, alice)
    csat.ask(conversation_id=conversation.pk)

    message = customer_says(sms, "Actually, the box was damaged")

    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN
    assert "held" not in message.metadata
    assert CsatResponse.objects.get().score is None


def test_a_number_a_day_after_the_question_is_an_ordinary_message(support, alice, sms, csat_on):
    conversation = resolved_conversation(sms, alice)
    csat.ask(conversation_id=conversation.pk)
    CsatResponse.objects.update(asked_at=timezone.now() - csat.ANSWER_WINDOW - timedelta(minutes=1))

    customer_says(sms, "3")

    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN
    assert CsatResponse.objects.get().score is None


def test_text_long_after_the_score_is_a_new_question_not_a_comment(support, alice, sms, csat_on):
    conversation = resolved_conversation(sms, alice)
    csat.ask(conversation_id=conversation.pk)
    customer_says(sms, "5")
    CsatResponse.objects.update(answered_at=timezone.now() - csat.COMMENT_WINDOW - timedelta(minutes=1))

    customer_says(sms, "Can I change my address?")

    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN
    assert CsatResponse.objects.get().comment == ""


def test_a_number_without_a_survey_is_an_ordinary_message(support, alice, sms):
    conversation = resolved_conversation(sms, alice)

    customer_says(sms, "5")

    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN


def test_the_score_is_announced_as_held_so_the_bot_does_not_answer_it(
    support, alice, sms, csat_on, django_capture_on_commit_callbacks
):
    from inbox import signals

    conversation = resolved_conversation(sms, alice)
    csat.ask(conversation_id=conversation.pk)
    heard = []

    def listener(sender, **kwargs):
        heard.append(kwargs.get("held"))

    signals.message_received.connect(listener, dispatch_uid="test-csat-held")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            customer_says(sms, "4")
    finally:
        signals.message_received.disconnect(dispatch_uid="test-csat-held")
    assert heard == ["csat_score"]
    assert CsatResponse.objects.get().score == 4


# -- email: a signed link ---------------------------------------------------------------------------


@pytest.fixture
def email_survey(support, alice, csat_on):
    channel = channel_of("email", support)
    conversation = resolved_conversation(channel, alice)
    return csat.ask(conversation_id=conversation.pk)


def links_in(survey_text):
    return [word for word in survey_text.split() if "/csat/" in word]


def test_email_gets_one_signed_link_per_score(email_survey):
    links = links_in(email_survey.survey.text)
    assert len(links) == 5
    assert "choices" not in email_survey.survey.metadata


def test_a_click_records_the_score_and_offers_a_comment_box(client, email_survey):
    link = links_in(email_survey.survey.text)[1]  # the second line: 4
    path = link[link.index("/csat/") :]

    page = client.get(path)

    assert page.status_code == 200
    assert "You rated our help 4/5." in page.content.decode()
    assert 'name="comment"' in page.content.decode()
    email_survey.refresh_from_db()
    assert email_survey.score == 4
    conversation = email_survey.conversation
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.RESOLVED

    sent = client.post(path, {"comment": "Quick and kind."})
    assert sent.status_code == 200
    email_survey.refresh_from_db()
    assert email_survey.comment == "Quick and kind."
    assert activities(conversation, "csat_comment")


def test_a_forged_link_is_a_400_page_and_records_nothing(client, email_survey):
    forged = signing.dumps({"r": email_survey.pk, "s": 5}, salt="another salt")
    page = client.get(reverse("csat:answer", args=[forged]))
    assert page.status_code == 400
    assert "This link is not valid." in page.content.decode()
    assert client.get(reverse("csat:answer", args=["not-a-token"])).status_code == 400
    email_survey.refresh_from_db()
    assert email_survey.score is None


def test_an_expired_link_is_a_410_page(client, email_survey):
    old = timezone.now() - csat.EMAIL_LINK_MAX_AGE - timedelta(minutes=1)

    class SignedLongAgo(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(old.timestamp()))

    expired = SignedLongAgo(salt=csat.SIGNING_SALT).sign_object({"r": email_survey.pk, "s": 5}, compress=True)
    page = client.get(reverse("csat:answer", args=[expired]))

    assert page.status_code == 410
    assert "This link has expired." in page.content.decode()
    email_survey.refresh_from_db()
    assert email_survey.score is None


def test_a_too_long_comment_is_a_400(client, email_survey):
    path = reverse("csat:answer", args=[csat.email_token(email_survey.pk, 3)])
    assert client.post(path, {"comment": "x" * 2001}).status_code == 400


def test_the_link_needs_no_login_and_works_for_the_customer_only_through_its_token(client, email_survey, bob):
    # An operator of another team who holds no token has nothing to open; a token is all it takes.
    client.login(username="bob", password=PASSWORD)
    path = reverse("csat:answer", args=[csat.email_token(email_survey.pk, 1)])
    assert client.get(path).status_code == 200


# -- reports ---------------------------------------------------------------------------------------


def answered(channel, by, score, address=""):
    conversation = resolved_conversation(channel, by, address)
    response = csat.ask(conversation_id=conversation.pk)
    csat.record_score(response=response, score=score)
    return response


def test_the_summary_gives_average_count_and_happy_share_by_channel_team_and_operator(
    support, sales, alice, bob, sms, admin
):
    TeamSettings.objects.create(team=support, csat_enabled=True)
    TeamSettings.objects.create(team=sales, csat_enabled=True)
    sales_sms = channel_of("sms", sales)
    answered(sms, alice, 5, "+15005550111")
    answered(sms, alice, 2, "+15005550112")
    answered(sales_sms, bob, 4, "+15005550113")
    since, until = timezone.now() - timedelta(days=1), timezone.now() + timedelta(minutes=1)

    everything = csat_summary(operator=admin, since=since, until=until)
    theirs = csat_summary(operator=alice, since=since, until=until)

    assert everything["total"] == {"count": 3, "average": 3.67, "happy_share": 66.7}
    assert {row["label"]: row["count"] for row in everything["by_team"]} == {"Support": 2, "Sales": 1}
    assert {row["label"]: row["average"] for row in everything["by_operator"]} == {"Alice": 3.5, "Bob": 4.0}
    assert {row["label"]: row["count"] for row in everything["by_channel"]} == {"SMS": 2, "Sim sms": 1}
    assert theirs["total"] == {"count": 2, "average": 3.5, "happy_share": 50.0}  # Sales' answer is not Alice's


def test_the_reports_page_shows_the_satisfaction_card_of_the_reader_s_teams(client, support, alice, sms, csat_on):
    answered(sms, alice, 4)
    rollups.rebuild()  # what the worker's refresh writes after the events (the page reads rollups)
    client.login(username="alice", password=PASSWORD)

    body = client.get("/reports/").content.decode()

    assert 'id="csat-heading"' in body
    assert "Average 4.0/5 from 1 answers" in body


def test_the_reports_page_has_no_satisfaction_card_for_another_team(client, support, alice, bob, sms, csat_on):
    answered(sms, alice, 4)
    client.login(username="bob", password=PASSWORD)

    body = client.get("/reports/").content.decode()

    assert 'id="csat-heading"' not in body


# -- through a real worker ---------------------------------------------------------------------------


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_resolving_asks_once_in_the_worker_and_the_tap_comes_back_through_it(stack, support, alice):
    TeamSettings.objects.create(team=support, csat_enabled=True)
    channel = channel_of("telegram", support)
    simulator.customer_says(channel=channel, address="70099", text="Where is my parcel?")
    message = wait_for(lambda: Message.objects.filter(direction="in").select_related("conversation").first())
    conversation = message.conversation
    outbound.reply(conversation=conversation, text="On its way.", by=alice)
    conversations.resolve_conversation(conversation=conversation, by=alice)

    survey = wait_for(lambda: survey_of(conversation))
    wait_for(lambda: Message.objects.get(pk=survey.pk).status == Message.Status.DELIVERED)
    rows = [json.loads(json.dumps(row)) for row in simulator.outbox(to="70099")]
    assert rows[-1]["choices"][0] == {"id": "csat:5", "title": "😀 5"}

    simulator.customer_says(channel=channel, address="70099", text="😀 5", choice="csat:5")
    wait_for(lambda: CsatResponse.objects.filter(score=5).exists())
    assert Conversation.objects.get(pk=conversation.pk).status == Conversation.Status.RESOLVED
    assert CsatResponse.objects.count() == 1


# -- through a real connector's stand-in: Telegram ----------------------------------------------------


def test_on_telegram_the_survey_is_an_inline_keyboard_and_the_tap_is_the_score(client, support, alice, csat_on):
    from tests.fakes.telegram import TOKEN, callback_update, running, text_update

    with running() as fake:
        bot = channels.create_channel(
            kind="telegram",
            name="Telegram",
            team=support,
            channel_settings={"bot_token": TOKEN, "api_base_url": fake.base_url, "public_base_url": "https://x.test"},
        )

        def deliver(update):
            headers = {"X-Telegram-Bot-Api-Secret-Token": bot.settings["secret_token"]}
            response = client.post(
                f"/hooks/{bot.key}/inbound/", data=json.dumps(update), content_type="application/json", headers=headers
            )
            assert response.status_code == 200
            process_pending()

        deliver(text_update(fake, "Where is my parcel?"))
        conversation = Conversation.objects.get()
        outbound.deliver_message(message_id=outbound.reply(conversation=conversation, text="Today.", by=alice).pk)
        conversations.resolve_conversation(conversation=conversation, by=alice)

        response = csat.ask(conversation_id=conversation.pk)
        outbound.deliver_message(message_id=response.survey.pk)
        survey = Message.objects.get(pk=response.survey.pk)
        call = fake.sent()[-1]
        assert call.params["text"] == "How would you rate our help?"
        assert [b["callback_data"] for b in call.params["reply_markup"]["inline_keyboard"][0]] == [
            "csat:5",
            "csat:4",
            "csat:3",
            "csat:2",
            "csat:1",
        ]

        deliver(callback_update(fake, "csat:3", message_id=int(survey.provider_id.split(":")[1])))

    response.refresh_from_db()
    assert response.score == 3
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.RESOLVED
    assert Message.objects.filter(conversation=conversation, direction="in").latest("pk").text == "😐 3"


def test_a_score_runs_no_customer_message_rule(support, alice, sms, csat_on, admin):
    from desk import rules
    from desk.models import Rule

    conversation = resolved_conversation(sms, alice)
    csat.ask(conversation_id=conversation.pk)
    rule = rules.save_rule(
        rule=Rule(name="Urgent", when=Rule.When.INBOUND, actions=[{"action": "priority", "priority": 3}]), by=admin
    )
    tap = customer_says(sms, "5")

    acted = rules.run_event(
        when=Rule.When.INBOUND, event_id=f"message.inbound:{tap.pk}", conversation_id=conversation.pk, message_id=tap.pk
    )

    assert acted == []
    assert rule.pk not in acted
    conversation.refresh_from_db()
    assert conversation.priority != Conversation.Priority.URGENT


def test_admins_read_the_answers_in_the_admin_and_cannot_change_them(client, support, alice, sms, csat_on, admin):
    response = answered(sms, alice, 4)
    client.force_login(admin)

    listing = client.get("/admin/desk/csatresponse/")

    assert listing.status_code == 200
    assert f"/admin/desk/csatresponse/{response.pk}/" in listing.content.decode()
    assert client.get("/admin/desk/csatresponse/add/").status_code == 403
    assert client.post(f"/admin/desk/csatresponse/{response.pk}/change/", {"score": 1}).status_code == 403
    response.refresh_from_db()
    assert response.score == 4
    assert client.get("/admin/desk/teamsettings/").status_code == 200
