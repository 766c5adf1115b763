"""The bot answers on Telegram and Viber as it does on SMS: a customer's question from the
messenger gets the knowledge base's answer back through the same messenger."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from bot import encoders, knowledge
from bot import services as bot
from bot.encoders import TfidfEncoder
from bot.models import Article, BotDecision, Calibration, ExampleQuestion
from inbox.models import InboundEvent, Message
from inbox.services import channels, inbound, outbound
from tests.fakes import telegram as fake_telegram
from tests.fakes import viber as fake_viber


@pytest.fixture
def kb(db, settings):
    settings.BOT_ENCODER = "tfidf"
    encoders.reset_encoders()
    knowledge.forget_indexes()
    article = Article.objects.create(title="Delivery", answer="Parcels arrive in 2-3 working days.")
    ExampleQuestion.objects.bulk_create(
        ExampleQuestion(article=article, text=t)
        for t in ["where is my parcel", "when will my order be delivered", "track my delivery"]
    )
    Calibration.objects.create(
        encoder=TfidfEncoder().name, language="*", threshold=0.2, margin=0.0, computed_at=timezone.now()
    )
    yield
    encoders.reset_encoders()
    knowledge.forget_indexes()


def answer_of_the_bot(message: Message) -> Message:
    decision = bot.run_triage(message_id=message.pk)
    assert decision is not None
    assert decision.action == BotDecision.Action.ANSWER
    answer = Message.objects.get(direction="out", sender="bot")
    assert answer.channel_id == message.channel_id
    outbound.deliver_message(message_id=answer.pk)
    answer.refresh_from_db()
    assert answer.status == "sent"
    return answer


def test_the_bot_answers_a_telegram_customer_on_telegram(client, kb, support):
    with fake_telegram.running() as fake:
        channel = channels.create_channel(
            kind="telegram",
            name="Telegram",
            team=support,
            bot_enabled=True,
            channel_settings={"bot_token": fake_telegram.TOKEN, "api_base_url": fake.base_url},
        )
        update = fake_telegram.text_update(fake, "where is my parcel")
        client.post(
            f"/hooks/{channel.key}/inbound/",
            data=json.dumps(update),
            content_type="application/json",
            headers={"X-Telegram-Bot-Api-Secret-Token": channel.settings["secret_token"]},
        )
        inbound.process_inbound_event(event_id=InboundEvent.objects.get().pk)
        answer_of_the_bot(Message.objects.get(direction="in"))
        assert [c.params["text"] for c in fake.delivered()] == ["Parcels arrive in 2-3 working days."]


def test_the_bot_answers_a_viber_customer_on_viber(client, kb, support):
    with fake_viber.running(verify_webhooks=False) as fake:
        channel = channels.create_channel(
            kind="viber",
            name="Viber",
            team=support,
            bot_enabled=True,
            channel_settings={
                "auth_token": fake_viber.AUTH_TOKEN,
                "sender_name": "Acme",
                "api_base_url": fake.base_url,
            },
        )
        body = json.dumps(fake_viber.message_event({"type": "text", "text": "where is my parcel"}, token=77)).encode()
        client.post(
            f"/hooks/{channel.key}/inbound/",
            data=body,
            content_type="application/json",
            headers={"X-Viber-Content-Signature": fake_viber.sign(body)},
        )
        inbound.process_inbound_event(event_id=InboundEvent.objects.get().pk)
        answer_of_the_bot(Message.objects.get(direction="in"))
        assert [m["text"] for m in fake.delivered()] == ["Parcels arrive in 2-3 working days."]
