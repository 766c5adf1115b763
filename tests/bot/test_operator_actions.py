"""Operators and the bot: give a conversation back to it, teach it from an answer (TF-IDF encoder)."""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from bot import encoders, knowledge, teaching
from bot import services as bot
from bot.encoders import TfidfEncoder
from bot.models import (
    Article,
    BotDecision,
    Calibration,
    EncodedText,
    ExampleQuestion,
    KnownOutOfScope,
    text_hash,
)
from bot.prior import generic_out_of_scope
from inbox.models import Channel, Conversation, Message, Operator
from inbox.services import conversations, outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.bot.conftest import KB

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tfidf_bot")]

_ids = count()


def calibrate(threshold: float = 0.2, margin: float = 0.0) -> None:
    Calibration.objects.create(
        encoder=TfidfEncoder().name, language="*", threshold=threshold, margin=margin, computed_at=timezone.now()
    )


def write(channel: Channel, text: str, address: str = "+15005550006") -> Message:
    inbound = InboundMessage(provider_id=f"op{next(_ids)}", address=address, text=text)
    return receive_message(channel=channel, inbound=inbound)


def conversation_of(message: Message) -> Conversation:
    return Conversation.objects.select_related("last_channel").get(pk=message.conversation_id)


# -- give back to the bot -------------------------------------------------------------------------


def test_giving_back_makes_the_bot_the_handler_clears_the_assignee_and_says_who(
    bot_sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    calibrate()
    first = write(bot_sms, "can I talk to a human please")
    bot.run_triage(message_id=first.pk)
    conversations.assign_conversation(conversation=conversation_of(first), operator=alice, by=alice)
    before = conversation_of(first).version

    conversation = bot.give_back_to_bot(conversation=conversation_of(first), by=alice)

    assert conversation.handler == Conversation.Handler.BOT
    assert conversation.assignee_id is None
    assert conversation.version > before, "screens see a new version"
    entry = conversation.messages.get(kind=Message.Kind.ACTIVITY, text="given_back_to_bot")
    assert entry.author == alice
    assert entry.metadata["from_name"] == "Alice"


def test_after_a_give_back_the_bot_answers_the_next_message_and_not_the_old_one(
    bot_sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    calibrate()
    asked = write(bot_sms, "can I talk to a human please")
    bot.run_triage(message_id=asked.pk)
    old = write(bot_sms, "i forgot my password")  # people own it now: the bot stays out
    assert bot.run_triage(message_id=old.pk) is None
    outbound.reply(conversation=conversation_of(old), text="Use the reset link, I just sent it.", by=alice)

    bot.give_back_to_bot(conversation=conversation_of(old), by=alice)

    assert bot.run_triage(message_id=old.pk) is None, "the question people answered is not answered again"
    # Nor does the sweep of missed bot turns take the old message for one and hand back to people.
    Conversation.objects.filter(pk=old.conversation_id).update(last_inbound_at=timezone.now() - timedelta(minutes=5))
    assert bot.sweep_untriaged() == []
    assert conversation_of(old).handler == Conversation.Handler.BOT

    new = write(bot_sms, "where is my parcel")
    decision = bot.run_triage(message_id=new.pk)

    assert decision is not None
    assert (decision.action, decision.article) == (BotDecision.Action.ANSWER, kb["Delivery"])
    answers = conversation_of(new).messages.filter(sender=Message.Sender.BOT).order_by("-created_at", "-pk")
    assert answers[0].text == kb["Delivery"].answer


def test_giving_back_frees_the_assignee_for_the_next_waiting_conversation(
    bot_sms: Channel, sms: Channel, alice: Operator, django_capture_on_commit_callbacks: Any
) -> None:
    conversations.set_presence(operator=alice, presence=Operator.Presence.ONLINE)
    Operator.objects.filter(pk=alice.pk).update(capacity=1)
    mine = write(bot_sms, "hello")
    conversations.assign_conversation(conversation=conversation_of(mine), operator=alice, by=alice)
    with django_capture_on_commit_callbacks(execute=True):
        waiting = write(sms, "anyone there?", address="+15005550007")
    assert conversation_of(waiting).assignee_id is None, "alice is full"

    with django_capture_on_commit_callbacks(execute=True):
        bot.give_back_to_bot(conversation=conversation_of(mine), by=alice)

    assert conversation_of(waiting).assignee_id == alice.pk


def test_a_conversation_on_a_channel_without_the_bot_cannot_go_back_to_it(sms: Channel, alice: Operator) -> None:
    message = write(sms, "hello")

    with pytest.raises(conversations.ReplyRefused, match="not switched on for SMS"):
        bot.give_back_to_bot(conversation=conversation_of(message), by=alice)
    assert conversation_of(message).handler == Conversation.Handler.HUMAN


def test_a_resolved_conversation_or_one_the_bot_has_cannot_go_back(bot_sms: Channel, alice: Operator) -> None:
    message = write(bot_sms, "hello")
    with pytest.raises(conversations.ReplyRefused, match="already answering"):
        bot.give_back_to_bot(conversation=conversation_of(message), by=alice)

    conversations.resolve_conversation(conversation=conversation_of(message), by=alice)
    with pytest.raises(conversations.ReplyRefused, match="reopen it first"):
        bot.give_back_to_bot(conversation=conversation_of(message), by=alice)


def test_another_teams_operator_cannot_give_a_conversation_back(
    bot_sms: Channel, alice: Operator, bob: Operator
) -> None:
    message = write(bot_sms, "hello")
    conversations.assign_conversation(conversation=conversation_of(message), operator=alice, by=alice)

    with pytest.raises(PermissionDenied):
        bot.give_back_to_bot(conversation=conversation_of(message), by=bob)
    assert conversation_of(message).assignee_id == alice.pk


# -- teach the bot from an answer -------------------------------------------------------------------


def answered(channel: Channel, question: str, answer: str, by: Operator, address: str = "+15005550006") -> Message:
    """A customer asks and an operator answers; returns the answer."""
    asked = write(channel, question, address=address)
    return outbound.reply(conversation=conversation_of(asked), text=answer, by=by)


def test_one_click_adds_the_question_to_the_article_the_bot_ranked_first_and_the_bot_learns_it(
    bot_sms: Channel, sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    # The shipped out-of-scope class (bot.prior) halves a paraphrase's confidence in a knowledge
    # base this small (0.14 -> 0.08 here): the threshold set by hand follows it.
    calibrate(threshold=0.15)
    question = "help, my password does not work anymore"
    assert bot.plan_reply(message=write(bot_sms, question, address="+15005550099")).action == "handoff", (
        "the bot cannot answer it yet"
    )
    answer = answered(sms, question, "Use 'Forgot password' on the sign-in page.", alice)

    example = teaching.add_example_question(message=answer, by=alice)

    assert (example.article, example.text, example.language) == (kb["Passwords"], question, "en")
    answer.refresh_from_db()
    assert answer.metadata["example"]["article_id"] == kb["Passwords"].pk
    entry = answer.conversation.messages.get(kind=Message.Kind.ACTIVITY, text="example_added")
    assert (entry.author, entry.metadata["question"]) == (alice, question)
    learned = bot.plan_reply(message=write(bot_sms, question, address="+15005550098"))
    assert (learned.action, learned.article_id) == ("answer", kb["Passwords"].pk)


def test_the_example_keeps_the_language_of_the_question(sms: Channel, kb: dict[str, Article], alice: Operator) -> None:
    calibrate(threshold=0.0)
    answer = answered(sms, "я забыл пароль", "Нажмите «Забыли пароль».", alice)

    example = teaching.add_example_question(message=answer, by=alice, article=kb["Passwords"])

    assert example.language == "ru"


def test_the_default_is_the_article_the_bot_ranked_first_when_it_handed_off(
    bot_sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    calibrate(threshold=0.9)  # the bot hands off, but Refunds came first in its ranking
    asked = write(bot_sms, "money back for my refund please")
    decision = bot.run_triage(message_id=asked.pk)
    assert decision is not None
    assert decision.reason == "not_confident"
    assert decision.scores["candidates"][0]["article_id"] == kb["Refunds"].pk
    answer = outbound.reply(conversation=conversation_of(asked), text="Your refund is on its way.", by=alice)

    suggestion = teaching.suggest_example(message=answer)

    assert suggestion.question == asked
    assert suggestion.default == kb["Refunds"]
    assert suggestion.candidates[0][0] == kb["Refunds"]


def test_with_nothing_close_staff_get_a_new_article_from_the_answer(
    sms: Channel, kb: dict[str, Article], admin: Operator
) -> None:
    calibrate(threshold=0.99)
    answer = answered(sms, "do you ship to the moon", "Not yet, only to Earth addresses.", admin)

    example = teaching.add_example_question(message=answer, by=admin)

    article = example.article
    assert article not in kb.values()
    assert (article.title, article.answer) == ("Do you ship to the moon", "Not yet, only to Earth addresses.")
    assert list(article.examples.values_list("text", flat=True)) == ["do you ship to the moon"]
    assert answer.conversation.messages.get(text="example_added").metadata["new_article"] is True


def test_operators_add_examples_but_only_staff_create_articles(
    sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    calibrate(threshold=0.99)
    answer = answered(sms, "do you ship to the moon", "Not yet.", alice)

    with pytest.raises(teaching.PickAnArticle):
        teaching.add_example_question(message=answer, by=alice)
    with pytest.raises(PermissionDenied):
        teaching.add_example_question(message=answer, by=alice, new_article=True)
    assert not Article.objects.exclude(pk__in=[a.pk for a in kb.values()]).exists()

    example = teaching.add_example_question(message=answer, by=alice, article=kb["Delivery"])
    assert example.article == kb["Delivery"]


def test_picking_another_article_moves_the_example(sms: Channel, kb: dict[str, Article], alice: Operator) -> None:
    calibrate(threshold=0.0)
    answer = answered(sms, "my parcel is late and i want my money", "Refund is on its way.", alice)
    first = teaching.add_example_question(message=answer, by=alice, article=kb["Delivery"])

    second = teaching.add_example_question(message=answer, by=alice, article=kb["Refunds"])

    assert not ExampleQuestion.objects.filter(pk=first.pk).exists()
    assert second.article == kb["Refunds"]


def test_only_an_operators_answer_after_a_question_can_teach(
    bot_sms: Channel, sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    calibrate()
    inbound = write(bot_sms, "i forgot my password")
    bot.run_triage(message_id=inbound.pk)
    bot_answer = conversation_of(inbound).messages.get(sender=Message.Sender.BOT)
    note = outbound.add_note(conversation=conversation_of(inbound), text="check later", by=alice)
    for message in (inbound, bot_answer, note):
        with pytest.raises(conversations.ReplyRefused, match="Only an operator"):
            teaching.add_example_question(message=message, by=alice, article=kb["Passwords"])

    # An operator who writes first answers no question.
    conversation = conversation_of(write(sms, "", address="+15005550042"))
    first = outbound.reply(conversation=conversation, text="Hello from us", by=alice)
    with pytest.raises(conversations.ReplyRefused, match="No customer question"):
        teaching.add_example_question(message=first, by=alice, article=kb["Passwords"])
    assert ExampleQuestion.objects.count() == sum(len(e) for _, e in KB.values())


def test_another_teams_operator_cannot_teach_from_the_answer(
    sms: Channel, kb: dict[str, Article], alice: Operator, bob: Operator
) -> None:
    answer = answered(sms, "i forgot my password", "Use the link.", alice)

    with pytest.raises(PermissionDenied):
        teaching.add_example_question(message=answer, by=bob, article=kb["Passwords"])


def test_a_question_the_bot_had_to_leave_alone_is_no_longer_out_of_scope(
    sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    KnownOutOfScope.objects.create(text="where do i send my return", source=KnownOutOfScope.Source.HANDOFF)
    answer = answered(sms, "where do i send my return", "To our warehouse; the label is in your e-mail.", alice)

    teaching.add_example_question(message=answer, by=alice, article=kb["Refunds"])

    assert not KnownOutOfScope.objects.filter(text="where do i send my return").exists()


def test_only_the_new_example_is_embedded(sms: Channel, kb: dict[str, Article], alice: Operator) -> None:
    encoder = encoders.get_encoder()
    knowledge.current_snapshot(encoder=encoder)
    cached = set(EncodedText.objects.filter(encoder=encoder.name).values_list("text_hash", flat=True))
    answer = answered(sms, "the courier never came", "We have asked the courier to call you.", alice)
    teaching.add_example_question(message=answer, by=alice, article=kb["Delivery"])

    snapshot = knowledge.current_snapshot(encoder=encoder)

    now = set(EncodedText.objects.filter(encoder=encoder.name).values_list("text_hash", flat=True))
    assert now - cached == {text_hash("the courier never came")}
    shipped = {text_hash(text) for text, _ in generic_out_of_scope()}  # the index's out-of-scope class (bot.prior)
    assert len(snapshot.index) == len(cached - shipped) + 1
