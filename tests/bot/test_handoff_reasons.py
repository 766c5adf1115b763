"""Hand-off reasons test_services.py leaves out: channel and customer rules, a real error, a real timeout.

Rules come from the channel's settings (``settings["bot"]``: ``hand_off_vip``, ``hand_off_labels``,
``hand_off_keywords``) and from the customer and conversation labels. The timeout is Celery's own
soft time limit, in the real worker.
"""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest
from django.utils import timezone

from bot import encoders
from bot import services as bot
from bot.encoders import TfidfEncoder
from bot.models import Article, BotDecision, Calibration, ExampleQuestion
from inbox.models import Channel, Conversation, Message, Team
from inbox.services import channels
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.conftest import Stack, wait_for
from tests.fakes import openai

pytestmark = pytest.mark.usefixtures("tfidf_bot")
_ids = count()


@pytest.fixture
def kb(db: None) -> None:
    for title, examples in {
        "Passwords": ["i forgot my password", "reset my password", "how do i change my password"],
        "Delivery": ["where is my parcel", "when will my order be delivered", "track my delivery"],
    }.items():
        article = Article.objects.create(title=title, answer=f"All about {title.lower()}.")
        ExampleQuestion.objects.bulk_create([ExampleQuestion(article=article, text=t) for t in examples])
    Calibration.objects.create(
        encoder=TfidfEncoder().name, language="*", threshold=0.2, margin=0.0, computed_at=timezone.now()
    )


def bot_channel(team: Team, name: str = "Bot SMS", **rules: Any) -> Channel:
    return channels.create_channel(
        kind="simulator",
        name=name,
        team=team,
        channel_settings={"medium": "sms", **({"bot": rules} if rules else {})},
        bot_enabled=True,
    )


def write(channel: Channel, text: str, address: str = "+15005550006", **extra: Any) -> Message:
    inbound = InboundMessage(provider_id=f"r{next(_ids)}", address=address, text=text, **extra)
    return receive_message(channel=channel, inbound=inbound)


def decide(message: Message) -> BotDecision:
    decision = bot.run_triage(message_id=message.pk)
    assert decision is not None
    return decision


@pytest.mark.django_db
def test_a_customer_labelled_for_people_goes_to_people(support: Team, kb: None) -> None:
    channel = bot_channel(support)
    message = write(channel, "where is my parcel")
    message.customer.labels = ["human-only"]
    message.customer.save(update_fields=["labels"])

    decision = decide(message)

    assert (decision.action, decision.reason) == (BotDecision.Action.HANDOFF, "rule_label")
    assert Conversation.objects.get(pk=message.conversation_id).handler == Conversation.Handler.HUMAN


@pytest.mark.django_db
def test_a_channel_names_its_own_labels_for_people(support: Team, kb: None) -> None:
    channel = bot_channel(support, hand_off_labels=["legal"])
    message = write(channel, "where is my parcel")
    Conversation.objects.filter(pk=message.conversation_id).update(labels=["legal"])

    assert decide(message).reason == "rule_label"


@pytest.mark.django_db
def test_a_keyword_of_the_channel_hands_off_where_another_channel_answers(support: Team, kb: None) -> None:
    strict = bot_channel(support, name="Strict", hand_off_keywords=["Parcel"])
    relaxed = bot_channel(support, name="Relaxed")

    on_strict = decide(write(strict, "where is my parcel", address="+15005550011"))
    on_relaxed = decide(write(relaxed, "where is my parcel", address="+15005550012"))

    assert (on_strict.action, on_strict.reason) == (BotDecision.Action.HANDOFF, "rule_keyword")
    assert on_relaxed.action == BotDecision.Action.ANSWER


@pytest.mark.django_db
def test_a_channel_may_let_the_bot_answer_vip_customers(support: Team, kb: None) -> None:
    channel = bot_channel(support, hand_off_vip=False)
    message = write(channel, "where is my parcel")
    message.customer.is_vip = True
    message.customer.save(update_fields=["is_vip"])

    assert decide(message).action == BotDecision.Action.ANSWER


@pytest.mark.django_db
def test_a_call_or_other_non_text_message_goes_to_people(support: Team, kb: None) -> None:
    message = write(bot_channel(support), "where is my parcel", kind=Message.Kind.CALL)

    assert decide(message).reason == "rule_not_text"


@pytest.mark.django_db
def test_an_encoder_that_cannot_be_built_hands_off_and_the_customer_is_told(
    settings: Any, support: Team, kb: None
) -> None:
    settings.BOT_ENCODER = "no-such-encoder"  # a real failure inside the bot's turn
    encoders.reset_encoders()
    message = write(bot_channel(support), "where is my parcel")

    decision = decide(message)

    assert (decision.action, decision.reason) == (BotDecision.Action.HANDOFF, "error")
    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.handler == Conversation.Handler.HUMAN
    told = conversation.messages.get(sender=Message.Sender.BOT)
    assert told.metadata["bot"]["handoff"] is True
    assert told.metadata["bot"]["reason"] == "error"


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_bot_turn_past_its_time_limit_hands_off_in_the_worker(stack: Any, support: Team, kb: None) -> None:
    from bot.tasks import triage_message

    channel = bot_channel(support)
    channel.bot_enabled = False
    channel.save(update_fields=["bot_enabled"])
    message = write(channel, "where is my parcel", address="+15005550077")  # stored without a bot turn...
    Channel.objects.filter(pk=channel.pk).update(bot_enabled=True)
    Conversation.objects.filter(pk=message.conversation_id).update(handler=Conversation.Handler.BOT)

    # ...then the bot's turn, in a worker of its own whose model takes half a minute to reply
    # (its own HTTP timeout is longer still), under a soft limit of one second.
    with openai.running() as model:
        model.script(openai.slow(30, openai.handoff()))
        slow = Stack(
            {
                **stack.env,
                "BOT_BACKEND": "llm",
                "LLM_BASE_URL": model.base_url,
                "LLM_API_KEY": model.api_key,
                "LLM_MODEL": model.model,
                "LLM_TIMEOUT": "120",
            }
        )
        try:
            slow.start_worker(name="slow-bot", queue="slow-bot")
            triage_message.apply_async(args=(message.pk,), queue="slow-bot", soft_time_limit=1, time_limit=120)
            decision = wait_for(lambda: BotDecision.objects.filter(message=message).first(), timeout=60)
        finally:
            slow.stop()

    assert (decision.action, decision.reason) == (BotDecision.Action.HANDOFF, "timeout")
    assert len(model.requests) == 1  # it was waiting on the model when time ran out
    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.handler == Conversation.Handler.HUMAN
    assert conversation.messages.filter(kind=Message.Kind.ACTIVITY, text="bot_handed_off").exists()
