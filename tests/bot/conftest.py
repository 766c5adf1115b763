from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps

# The database tests need the triage app; until settings install it, only the engine is tested.
collect_ignore = [] if apps.is_installed("bot") else ["test_knowledge.py"]

# A small knowledge base the bot's tests share: title -> (answer, example questions).
KB = {
    "Passwords": (
        "Use 'Forgot password' on the sign-in page.",
        ["i forgot my password", "reset my password", "how do i change my password", "cannot log in to my account"],
    ),
    "Delivery": (
        "Parcels arrive in 2-3 working days; the tracking link is in your e-mail.",
        ["where is my parcel", "when will my order be delivered", "track my delivery", "my package has not arrived"],
    ),
    "Refunds": (
        "Refunds reach your card within 5 days of the return.",
        ["how do i get a refund", "i want my money back", "refund my order please", "how long does a refund take"],
    ),
}


@pytest.fixture
def tfidf_bot(settings: Any) -> Iterator[None]:
    """The bot on the TF-IDF encoder, with no encoder or index left over from another test."""
    from bot import encoders, knowledge

    settings.BOT_ENCODER = "tfidf"
    encoders.reset_encoders()
    knowledge.forget_indexes()
    yield
    encoders.reset_encoders()
    knowledge.forget_indexes()


@pytest.fixture
def kb(db: None) -> dict[str, Any]:
    from bot.models import Article, ExampleQuestion

    articles = {}
    for title, (answer, examples) in KB.items():
        article = articles[title] = Article.objects.create(title=title, answer=answer)
        ExampleQuestion.objects.bulk_create([ExampleQuestion(article=article, text=t) for t in examples])
    return articles


@pytest.fixture
def bot_sms(support: Any) -> Any:
    from inbox.services import channels

    return channels.create_channel(
        kind="simulator", name="Bot SMS", team=support, channel_settings={"medium": "sms"}, bot_enabled=True
    )
