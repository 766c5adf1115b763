# ruff: noqa: RUF001 -- messages in Russian are meant.
"""The optional LLM backend against a local chat-completions stand-in (TF-IDF retrieval, no calibration)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from bot import llm
from bot import services as bot
from bot.encoders import TfidfEncoder
from bot.models import Article, BotDecision, Calibration
from inbox.models import Channel, Conversation, Message
from inbox.services import outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.conftest import ROOT, free_port
from tests.fakes import openai
from tests.fakes.openai import FakeOpenAI
from tests.test_settings import start_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tfidf_bot")]

PHONE = "+15005550006"
_ids = count()


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with openai.running() as fake:
        yield fake


@pytest.fixture
def llm_on(settings: Any, model: FakeOpenAI) -> FakeOpenAI:
    settings.BOT_BACKEND = "llm"
    settings.LLM_BASE_URL = model.base_url
    settings.LLM_API_KEY = model.api_key
    settings.LLM_MODEL = model.model
    settings.LLM_TIMEOUT = 1.0
    settings.LLM_MAX_ARTICLES = 3
    return model


def write(channel: Channel, text: str, **extra: Any) -> Message:
    inbound = InboundMessage(provider_id=f"m{next(_ids)}", address=PHONE, text=text, **extra)
    return receive_message(channel=channel, inbound=inbound)


def bot_messages(conversation: Conversation) -> list[Message]:
    return list(conversation.messages.filter(sender=Message.Sender.BOT).order_by("created_at", "pk"))


def handler_of(message: Message) -> str:
    return Conversation.objects.get(pk=message.conversation_id).handler


# -- what goes to the model -----------------------------------------------------------------------


def test_the_model_gets_only_the_articles_the_conversation_and_the_key(
    bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI, alice: Any
) -> None:
    passwords, refunds = kb["Passwords"], kb["Refunds"]
    llm_on.script(
        openai.answer("Use 'Forgot password' when you sign in.", [passwords.pk]),
        openai.answer("Refunds reach your card within 5 days.", [refunds.pk]),
    )
    first = write(bot_sms, "i forgot my password")
    bot.run_triage(message_id=first.pk)
    conversation = first.conversation
    outbound.reply(conversation=conversation, text="Alice here: did that work?", by=alice)
    outbound.add_note(conversation=conversation, text="secret: customer sounds angry", by=alice)
    Conversation.objects.filter(pk=conversation.pk).update(handler=Conversation.Handler.BOT)  # given back to the bot

    decision = bot.run_triage(message_id=write(bot_sms, "and how do i get a refund").pk)

    assert decision is not None
    assert decision.reason == "llm_answered"
    request = llm_on.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {llm_on.api_key}"
    body = request.body
    assert body["model"] == llm_on.model
    assert body["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "ONLY" in body["messages"][0]["content"]
    context = request.context
    by_id = {a.pk: a for a in kb.values()}
    assert context["articles"], "retrieval first: the knowledge base goes with the question"
    assert context["articles"][0]["id"] == refunds.pk, "the best-ranked article first"
    for article in context["articles"]:
        assert article == {
            "id": article["id"],
            "title": by_id[article["id"]].title,
            "language": "en",
            "answer": by_id[article["id"]].answer,
        }
    assert context["conversation"] == [
        {"role": "customer", "text": "i forgot my password"},
        {"role": "bot", "text": "Use 'Forgot password' when you sign in."},
        {"role": "operator", "text": "Alice here: did that work?"},
        {"role": "customer", "text": "and how do i get a refund"},
    ]
    raw = request.raw.decode()
    assert "secret" not in raw, "private notes never leave"
    assert "5005550006" not in raw, "nor the customer's address"
    assert "Alice" not in raw.replace("Alice here", ""), "nor who the operator is"


def test_only_articles_the_channel_may_use_are_sent(
    bot_sms: Channel, sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI
) -> None:
    Article.objects.filter(pk=kb["Refunds"].pk).update(channels=[sms.pk])
    llm_on.script(openai.handoff())

    bot.run_triage(message_id=write(bot_sms, "how do i get a refund").pk)

    [request] = llm_on.requests
    assert kb["Refunds"].pk not in [a["id"] for a in request.context["articles"]]


# -- answers ---------------------------------------------------------------------------------------


def test_an_answer_goes_to_the_customer_with_its_article_recorded(
    bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI
) -> None:
    passwords = kb["Passwords"]
    llm_on.script(openai.answer("Нажмите «Забыли пароль» на странице входа.", [passwords.pk]))
    message = write(bot_sms, "я забыл пароль от password")

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert (decision.action, decision.reason) == (BotDecision.Action.ANSWER, "llm_answered")
    assert decision.article == passwords
    assert decision.encoder == f"llm:{llm_on.model}"
    assert decision.scores["cited"] == [passwords.pk]
    assert decision.scores["model"] == llm_on.model
    assert decision.scores["usage"]["total_tokens"] > 0
    [answer] = bot_messages(message.conversation)
    assert answer.text == "Нажмите «Забыли пароль» на странице входа.", "the model's words, in the customer's language"
    assert answer.status == Message.Status.QUEUED, "sent through the core's outbox"
    assert answer.metadata["bot"]["article_id"] == passwords.pk
    assert answer.metadata["bot"]["generated_by"] == f"llm:{llm_on.model}"
    assert handler_of(message) == Conversation.Handler.BOT


def test_a_message_is_decided_once_and_the_model_asked_once(
    bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI
) -> None:
    llm_on.script(openai.answer("See the tracking link in your e-mail.", [kb["Delivery"].pk]))
    message = write(bot_sms, "where is my parcel")

    assert bot.run_triage(message_id=message.pk) is not None
    assert bot.run_triage(message_id=message.pk) is None

    assert len(llm_on.requests) == 1
    assert len(bot_messages(message.conversation)) == 1


def test_the_model_may_answer_with_fenced_json_and_string_ids(
    bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI
) -> None:
    reply = {"action": "answer", "answer": "Within 5 days.", "article_ids": [str(kb["Refunds"].pk)], "reason": ""}
    llm_on.script(openai.content("```json\n" + json.dumps(reply) + "\n```"))

    decision = bot.run_triage(message_id=write(bot_sms, "how long does a refund take").pk)

    assert decision is not None
    assert (decision.reason, decision.article_id) == ("llm_answered", kb["Refunds"].pk)


# -- hand-offs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (openai.handoff("not covered by the articles"), "llm_handoff"),
        (openai.content("Sure! Your parcel is on its way."), "llm_malformed"),
        (openai.content('{"action": "answer", "answer": "Soon"'), "llm_malformed"),
        (openai.content('{"action": "maybe"}'), "llm_malformed"),
        (openai.content('{"action": "answer", "answer": "", "article_ids": [1]}'), "llm_malformed"),
        (openai.content('{"action": "answer", "answer": "x", "article_ids": [true]}'), "llm_malformed"),
        (openai.content('["answer"]'), "llm_malformed"),
        (
            openai.content(json.dumps({"action": "answer", "answer": "x", "article_ids": [1]}), finish_reason="length"),
            "llm_malformed",
        ),
        (openai.answer("Your parcel arrives tomorrow.", []), "llm_no_article"),
        (openai.answer("Your parcel arrives tomorrow.", [987654]), "llm_unknown_article"),
        (openai.slow(3.0, openai.answer("Too late.", [])), "llm_timeout"),
        (openai.status(429), "llm_rate_limited"),
        (openai.status(500), "llm_server_error"),
        (openai.status(503), "llm_server_error"),
    ],
    ids=[
        "handoff",
        "prose",
        "truncated-json",
        "unknown-action",
        "empty-answer",
        "boolean-id",
        "not-an-object",
        "cut-off",
        "no-article",
        "invented-article",
        "timeout",
        "429",
        "500",
        "503",
    ],
)
def test_anything_but_a_grounded_answer_hands_off_with_the_reason(
    bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI, reply: openai.Reply, reason: str
) -> None:
    llm_on.script(reply)
    message = write(bot_sms, "where is my parcel")

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert (decision.action, decision.reason) == (BotDecision.Action.HANDOFF, reason)
    assert decision.article_id is None
    assert len(llm_on.requests) == 1
    if reason == "llm_handoff":
        assert decision.scores["model_reason"] == "not covered by the articles"
    else:
        assert decision.scores["error"].startswith(reason)
    assert handler_of(message) == Conversation.Handler.HUMAN
    [told] = bot_messages(message.conversation)
    assert told.metadata["bot"]["handoff"], "the customer is told, never silence"
    note = message.conversation.messages.get(kind=Message.Kind.ACTIVITY, text="bot_handed_off")
    assert note.metadata["reason"] == reason


def test_an_article_that_exists_but_was_not_given_counts_as_invented(
    bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI, settings: Any
) -> None:
    settings.LLM_MAX_ARTICLES = 1
    llm_on.script(openai.answer("Refunds take 5 days.", [kb["Refunds"].pk]))

    decision = bot.run_triage(message_id=write(bot_sms, "where is my parcel").pk)

    assert decision is not None
    assert [a["id"] for a in llm_on.requests[0].context["articles"]] == [kb["Delivery"].pk]
    assert decision.reason == "llm_unknown_article"


def test_a_wrong_key_hands_off(bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI, settings: Any) -> None:
    settings.LLM_API_KEY = "sk-wrong"
    llm_on.script(openai.answer("never sent", [kb["Delivery"].pk]))

    decision = bot.run_triage(message_id=write(bot_sms, "where is my parcel").pk)

    assert decision is not None
    assert (decision.reason, decision.scores["error"]) == ("llm_refused", "llm_refused: HTTP 401")


def test_an_unreachable_server_hands_off(bot_sms: Channel, kb: dict[str, Article], settings: Any) -> None:
    settings.BOT_BACKEND = "llm"
    settings.LLM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    settings.LLM_MODEL = "nobody-home"

    message = write(bot_sms, "where is my parcel")
    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert decision.reason == "llm_unreachable"
    assert handler_of(message) == Conversation.Handler.HUMAN


def test_an_empty_knowledge_base_hands_off_without_asking_the_model(bot_sms: Channel, llm_on: FakeOpenAI) -> None:
    decision = bot.run_triage(message_id=write(bot_sms, "where is my parcel").pk)

    assert decision is not None
    assert decision.reason == "empty_knowledge_base"
    assert llm_on.requests == []


# -- the same rules as the knowledge base, before the model is asked -------------------------------


@pytest.mark.parametrize(
    "text", ["can I talk to a human please", "соедините с оператором", "хочу поговорити з людиною"]
)
def test_asking_for_a_person_hands_off_without_asking_the_model(
    bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI, text: str
) -> None:
    llm_on.script(openai.answer("I am a person.", [kb["Delivery"].pk]))
    message = write(bot_sms, text)

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert (decision.action, decision.reason) == (BotDecision.Action.HANDOFF, "asked_for_person")
    assert llm_on.requests == []
    assert handler_of(message) == Conversation.Handler.HUMAN


def test_a_rule_hands_off_without_asking_the_model(
    bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI
) -> None:
    message = write(bot_sms, "where is my parcel")
    message.customer.is_vip = True
    message.customer.save(update_fields=["is_vip"])

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert decision.reason == "rule_vip"
    assert llm_on.requests == []


def test_auto_replies_and_conversations_a_person_owns_never_reach_the_model(
    bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI, alice: Any
) -> None:
    auto = write(bot_sms, "I am out of the office until Monday", auto_reply=True)
    assert bot.run_triage(message_id=auto.pk) is None
    outbound.reply(conversation=auto.conversation, text="Hi, Alice here", by=alice)  # a person takes over
    assert bot.run_triage(message_id=write(bot_sms, "where is my parcel").pk) is None

    assert llm_on.requests == []
    assert bot_messages(auto.conversation) == []


def test_saying_it_did_not_help_twice_hands_off_before_the_third_call(
    bot_sms: Channel, kb: dict[str, Article], llm_on: FakeOpenAI
) -> None:
    passwords = kb["Passwords"]
    llm_on.script(
        openai.answer("Use 'Forgot password'.", [passwords.pk]),
        openai.answer("Try 'Forgot password' on the sign-in page.", [passwords.pk]),
        openai.answer("never asked", [passwords.pk]),
    )
    decisions = [
        bot.run_triage(message_id=write(bot_sms, text).pk) for text in ("i forgot my password", "no", "не помогло")
    ]

    assert [(d.action, d.reason) for d in decisions if d] == [
        ("answer", "llm_answered"),
        ("answer", "llm_answered"),
        ("handoff", "unhelpful_twice"),
    ]
    assert len(llm_on.requests) == 2


# -- off by default and configuration --------------------------------------------------------------


def test_the_backend_is_off_by_default_and_the_model_is_never_asked(
    bot_sms: Channel, kb: dict[str, Article], model: FakeOpenAI, settings: Any
) -> None:
    assert django_settings.BOT_BACKEND == "kb"
    settings.LLM_BASE_URL, settings.LLM_MODEL = model.base_url, model.model  # configured, but not switched on
    Calibration.objects.create(
        encoder=TfidfEncoder().name, language="*", threshold=0.2, margin=0.0, computed_at=timezone.now()
    )
    message = write(bot_sms, "i forgot my password")

    decision = bot.run_triage(message_id=message.pk)

    assert decision is not None
    assert (decision.reason, decision.article) == ("confident", kb["Passwords"])
    assert [m.text for m in bot_messages(message.conversation)] == [kb["Passwords"].answer]
    assert model.requests == []


def test_switched_on_without_a_server_the_bot_hands_off(
    bot_sms: Channel, kb: dict[str, Article], settings: Any
) -> None:
    settings.BOT_BACKEND = "llm"
    settings.LLM_BASE_URL = ""

    with pytest.raises(ImproperlyConfigured):
        llm.LlmConfig.from_settings()
    decision = bot.run_triage(message_id=write(bot_sms, "where is my parcel").pk)
    assert decision is not None
    assert (decision.action, decision.reason) == (BotDecision.Action.HANDOFF, "error")


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"BOT_BACKEND": "llm"}, "needs LLM_BASE_URL and LLM_MODEL"),
        ({"BOT_BACKEND": "llm", "LLM_BASE_URL": "http://127.0.0.1:1/v1"}, "needs LLM_BASE_URL and LLM_MODEL"),
        ({"BOT_BACKEND": "llm", "LLM_BASE_URL": "127.0.0.1:1", "LLM_MODEL": "m"}, "must start with http"),
        ({"BOT_BACKEND": "gpt"}, "BOT_BACKEND must be"),
        (
            {"BOT_BACKEND": "llm", "LLM_BASE_URL": "http://127.0.0.1:1/v1", "LLM_MODEL": "m", "LLM_TIMEOUT": "0"},
            "LLM_TIMEOUT must be",
        ),
    ],
)
def test_settings_refuse_to_switch_it_on_half_configured(env: dict[str, str], problem: str) -> None:
    result = start_settings(**env)

    assert result.returncode != 0
    assert problem in result.stderr


@pytest.mark.stack
def test_settings_read_the_key_from_a_file(tmp_path: Any) -> None:
    key = tmp_path / "llm-key"
    key.write_text("sk-from-a-file\n")
    env = {"BOT_BACKEND": "LLM", "LLM_BASE_URL": "http://127.0.0.1:1/v1/", "LLM_MODEL": "m"}
    show = "from django.conf import settings as s; print(s.BOT_BACKEND, s.LLM_BASE_URL, s.LLM_API_KEY, s.LLM_TIMEOUT)"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {show}"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env, "LLM_API_KEY_FILE": str(key)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["llm", "http://127.0.0.1:1/v1", "sk-from-a-file", "8.0"]
