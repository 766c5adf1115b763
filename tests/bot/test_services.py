# ruff: noqa: RUF001 -- messages in Russian, Ukrainian and Persian are meant.
"""The bot's turn after a customer message: answer, ask, hand off, or stay silent (TF-IDF encoder)."""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from django.utils import timezone

from bot import knowledge, receivers
from bot import services as bot
from bot.encoders import TfidfEncoder
from bot.models import Article, BotDecision, Calibration, ExampleQuestion
from inbox.models import Channel, Conversation, Message
from inbox.services import conversations, outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tfidf_bot")]

_ids = count()


def calibrate(threshold: float = 0.2, margin: float = 0.0) -> None:
    Calibration.objects.create(
        encoder=TfidfEncoder().name, language="*", threshold=threshold, margin=margin, computed_at=timezone.now()
    )


def write(channel: Channel, text: str, **extra: Any) -> Message:
    inbound = InboundMessage(provider_id=f"m{next(_ids)}", address="+15005550006", text=text, **extra)
    return receive_message(channel=channel, inbound=inbound)


def bot_messages(conversation: Conversation) -> list[Message]:
    return list(conversation.messages.filter(sender=Message.Sender.BOT).order_by("created_at", "pk"))


def test_the_bot_answers_a_clear_question_with_the_article(bot_sms: Channel, kb: dict[str, Article]) -> None:
    calibrate()
    message = write(bot_sms, "i forgot my password")

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert decision.action == BotDecision.Action.ANSWER
    assert decision.article == kb["Passwords"]
    [answer] = bot_messages(message.conversation)
    assert answer.text == kb["Passwords"].answer
    assert answer.status == Message.Status.QUEUED, "sent through the core's outbox"
    message.conversation.refresh_from_db()
    assert message.conversation.handler == Conversation.Handler.BOT


@pytest.mark.parametrize(
    "text",
    [
        "can I talk to a human please",
        "соедините с оператором",
        "хочу поговорити з людиною",
        "لطفا با اپراتور صحبت کنم",
    ],
)
def test_asking_for_a_person_hands_off_in_any_language(bot_sms: Channel, kb: dict[str, Article], text: str) -> None:
    calibrate()
    message = write(bot_sms, text)

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert (decision.action, decision.reason) == (BotDecision.Action.HANDOFF, "asked_for_person")
    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.handler == Conversation.Handler.HUMAN
    assert len(bot_messages(conversation)) == 1, "the customer is told"
    note = conversation.messages.get(kind=Message.Kind.ACTIVITY, text="bot_handed_off")
    assert note.metadata["reason"] == "asked_for_person"
    assert note.metadata["question"] == text


def test_below_the_threshold_the_bot_hands_off_and_logs_its_scores(bot_sms: Channel, kb: dict[str, Article]) -> None:
    calibrate(threshold=0.99)
    message = write(bot_sms, "what do you think about quantum physics")

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert (decision.action, decision.reason) == (BotDecision.Action.HANDOFF, "not_confident")
    assert decision.scores["candidates"], "a hand-off keeps the scores it was decided on"
    assert Conversation.objects.get(pk=message.conversation_id).handler == Conversation.Handler.HUMAN


def test_without_a_calibration_the_bot_hands_off(bot_sms: Channel, kb: dict[str, Article]) -> None:
    decision = bot.run_triage(message_id=write(bot_sms, "i forgot my password").pk)

    assert decision is not None
    assert decision.reason == "not_calibrated"


def test_close_articles_make_the_bot_ask_and_the_customer_can_pick_one(
    bot_sms: Channel, kb: dict[str, Article]
) -> None:
    calibrate(threshold=0.0, margin=1.0)
    first = write(bot_sms, "my order")

    asked = bot.run_triage(message_id=first.pk)
    assert asked is not None
    assert asked.action == BotDecision.Action.CLARIFY
    question = bot_messages(first.conversation)[-1]
    assert "1." in question.text
    assert "2." in question.text

    picked = bot.run_triage(message_id=write(bot_sms, "2").pk)

    assert picked is not None
    assert (picked.action, picked.reason) == (BotDecision.Action.ANSWER, "picked_from_offer")
    assert picked.article_id == asked.offered[1]


def test_two_unhelpful_answers_in_a_row_hand_off(bot_sms: Channel, kb: dict[str, Article]) -> None:
    calibrate()
    actions = [bot.run_triage(message_id=write(bot_sms, "i forgot my password").pk) for _ in range(3)]

    assert [(d.action, d.reason) for d in actions if d] == [
        ("answer", "confident"),
        ("answer", "confident"),  # the same article again: the first answer did not help
        ("handoff", "unhelpful_twice"),
    ]


def test_saying_it_did_not_help_twice_hands_off(bot_sms: Channel, kb: dict[str, Article]) -> None:
    calibrate(threshold=0.0)
    bot.run_triage(message_id=write(bot_sms, "i forgot my password").pk)
    bot.run_triage(message_id=write(bot_sms, "no").pk)

    last = bot.run_triage(message_id=write(bot_sms, "не помогло").pk)

    assert last is not None
    assert (last.action, last.reason) == (BotDecision.Action.HANDOFF, "unhelpful_twice")


def test_an_auto_reply_is_never_answered(bot_sms: Channel, kb: dict[str, Article]) -> None:
    calibrate()
    message = write(bot_sms, "I am out of the office until Monday", auto_reply=True)

    assert bot.run_triage(message_id=message.pk) is None
    assert bot_messages(message.conversation) == []


def test_the_bot_stays_silent_when_a_person_owns_the_conversation(
    bot_sms: Channel, kb: dict[str, Article], alice: Any
) -> None:
    calibrate()
    first = write(bot_sms, "hello")
    outbound.reply(conversation=first.conversation, text="Hi, Alice here", by=alice)  # a person takes over

    assert bot.run_triage(message_id=write(bot_sms, "i forgot my password").pk) is None
    assert bot_messages(first.conversation) == []


def test_a_message_is_decided_once_even_if_the_task_runs_twice(bot_sms: Channel, kb: dict[str, Article]) -> None:
    calibrate()
    message = write(bot_sms, "where is my parcel")

    bot.run_triage(message_id=message.pk)
    assert bot.run_triage(message_id=message.pk) is None

    assert len(bot_messages(message.conversation)) == 1


def test_only_the_newest_customer_message_gets_an_answer(bot_sms: Channel, kb: dict[str, Article]) -> None:
    calibrate()
    older = write(bot_sms, "where is my parcel")
    newer = write(bot_sms, "and how do i get a refund")

    assert bot.run_triage(message_id=older.pk) is None
    decision = bot.run_triage(message_id=newer.pk)
    assert decision is not None
    assert decision.article == kb["Refunds"]


def test_an_error_hands_off_instead_of_silence(
    bot_sms: Channel, kb: dict[str, Article], monkeypatch: pytest.MonkeyPatch
) -> None:
    calibrate()

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(knowledge, "triage_text", broken)
    message = write(bot_sms, "where is my parcel")

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert (decision.action, decision.reason) == (BotDecision.Action.HANDOFF, "error")
    assert Conversation.objects.get(pk=message.conversation_id).handler == Conversation.Handler.HUMAN


def test_a_vip_customer_goes_straight_to_people(bot_sms: Channel, kb: dict[str, Article]) -> None:
    calibrate()
    message = write(bot_sms, "where is my parcel")
    message.customer.is_vip = True
    message.customer.save(update_fields=["is_vip"])

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert decision.reason == "rule_vip"


def test_a_refused_reply_hands_off(bot_sms: Channel, kb: dict[str, Article]) -> None:
    calibrate()
    message = write(bot_sms, "where is my parcel")
    conversations.opt_out(channel=bot_sms, customer=message.customer)

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert (decision.action, decision.reason) == (BotDecision.Action.HANDOFF, "reply_refused")
    assert Conversation.objects.get(pk=message.conversation_id).handler == Conversation.Handler.HUMAN


def test_a_lost_bot_turn_is_swept_to_people(bot_sms: Channel, kb: dict[str, Article]) -> None:
    message = write(bot_sms, "where is my parcel")
    Conversation.objects.filter(pk=message.conversation_id).update(
        last_inbound_at=timezone.now() - timedelta(minutes=5)
    )

    assert bot.sweep_untriaged() == [message.conversation_id]
    assert BotDecision.objects.get(message=message).reason == "bot_missed_turn"


def test_the_core_hook_enqueues_the_bot_only_for_its_own_conversations(
    bot_sms: Channel, sms: Channel, kb: dict[str, Article], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_triage", queued.append)
    mine = write(bot_sms, "where is my parcel")
    human = receive_message(channel=sms, inbound=InboundMessage(provider_id="h1", address="+15005550007"))

    receivers.bot_turn(Message, message_id=mine.pk, conversation_id=mine.conversation_id, auto_reply=False)
    receivers.bot_turn(Message, message_id=mine.pk, conversation_id=mine.conversation_id, auto_reply=True)
    receivers.bot_turn(Message, message_id=human.pk, conversation_id=human.conversation_id, auto_reply=False)

    assert queued == [mine.pk]


@pytest.mark.parametrize(
    "text",
    [
        "quiero hablar con una persona",
        "posso falar com um atendente?",
        "Ich möchte mit einem Menschen sprechen",
        "je voudrais parler à quelqu'un",
        "vorrei parlare con un operatore",
    ],
)
def test_a_request_for_a_person_is_heard_in_western_european_languages(text: str) -> None:
    assert bot.wants_a_person(text)


@pytest.mark.parametrize(
    "text", ["¿dónde está mi pedido?", "onde está o meu pedido", "Wo ist meine Bestellung?", "où est ma commande"]
)
def test_ordinary_questions_in_those_languages_are_not_a_request_for_a_person(text: str) -> None:
    assert not bot.wants_a_person(text)


def test_a_spanish_customer_is_handed_off_in_spanish(bot_sms: Channel, kb: dict[str, Article]) -> None:
    ExampleQuestion.objects.create(article=kb["Passwords"], text="olvidé mi contraseña", language="es")
    calibrate()
    message = write(bot_sms, "quiero hablar con una persona, por favor")

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert (decision.reason, decision.language) == ("asked_for_person", "es")
    [told] = bot_messages(Conversation.objects.get(pk=message.conversation_id))
    assert told.text == "Le paso con un compañero, que le responderá aquí lo antes posible."


def test_wants_a_person_does_not_fire_on_ordinary_words() -> None:
    assert bot.wants_a_person("I want to speak to someone")
    assert not bot.wants_a_person("where is my parcel")
    assert not bot.wants_a_person("humanity is great")
