"""Demo data for a first start: teams, operators, customers with history on several channels, a bot.

The data lives in ``demo/data/*.json`` (the customers write in English, Russian, Ukrainian and
Persian); this module only turns it into rows through the apps' own services.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from django.db import transaction

from bot.models import Article, ExampleQuestion, KnownOutOfScope
from connectors.simulator import simulated_channel
from connectors.webchat.views import demo_origins
from inbox.models import Channel, Conversation, Operator, SavedReply, Team
from inbox.services import channels as channel_services
from inbox.services import conversations, inbound, outbound, replies
from inbox.transport import InboundMessage

DATA = Path(__file__).resolve().parent / "data"
DEMO_PASSWORD = "parley-demo"  # noqa: S105 - printed at start, for the demo only
# Simulated channels on which the demo's bot answers first (the seeded conversations stay with people).
BOT_MEDIUMS = ("sms", "whatsapp", "webchat")
PRIORITIES = {"high": Conversation.Priority.HIGH}


@cache
def data(name: str) -> Any:
    """One of the demo's data files, parsed."""
    with (DATA / f"{name}.json").open(encoding="utf-8") as handle:
        return json.load(handle)


def load_saved_replies() -> None:
    """The demo's saved replies; those there already (by team and title) are left as they are."""
    for item in data("saved_replies"):
        team = Team.objects.filter(name=item["team"]).first() if item["team"] else None
        if item["team"] and team is None:
            continue
        if not SavedReply.objects.filter(team=team, title__iexact=item["title"]).exists():
            replies.create_saved_reply(title=item["title"], text=item["text"], team=team, by=None)


def load_knowledge_base() -> None:
    """A support knowledge base large enough for ``bot calibrate`` to find an operating point.

    Calibration wants a Wilson lower bound of 97 % precision on held-out folds, for every language
    with enough data of its own: even a retriever that is never wrong needs some 150 example
    questions and 80 known out-of-scope messages for that, and real ones err, so English has about
    twice as many.
    """
    knowledge_base = data("knowledge_base")
    for item in knowledge_base["articles"]:
        article = Article.objects.create(title=item["title"], answer=item["answer"], language="en", tags=item["tags"])
        ExampleQuestion.objects.bulk_create(
            [ExampleQuestion(article=article, text=q["text"], language=q["language"]) for q in item["questions"]]
        )
    KnownOutOfScope.objects.bulk_create(
        [
            KnownOutOfScope(text=q["text"], language=q["language"], source=KnownOutOfScope.Source.MANUAL)
            for q in knowledge_base["known_out_of_scope"]
        ]
    )


@transaction.atomic
def load_demo() -> bool:
    """Create the demo once; returns False when operators exist already."""
    if Operator.objects.exists():
        return False
    support = Team.objects.create(name="Support")
    sales = Team.objects.create(name="Sales")
    Operator.objects.create_superuser("admin", "admin@example.test", DEMO_PASSWORD, display_name="Ada Admin")
    operators = {}
    for username, name, teams in [
        ("alice", "Alice Operator", [support]),
        ("bob", "Bob Operator", [support]),
        ("carol", "Carol Sales", [sales, support]),
    ]:
        operator = Operator.objects.create_user(username, f"{username}@example.test", DEMO_PASSWORD, display_name=name)
        operator.teams.set(teams)
        operators[username] = operator
    channels: dict[str, Channel] = {}
    for medium in ["sms", "whatsapp", "email", "telegram", "viber", "webchat"]:
        channels[medium] = simulated_channel(medium)
    channels["messenger"] = simulated_channel("messenger")
    channels["messenger"].team = sales
    channels["messenger"].save(update_fields=["team"])
    for n, customer in enumerate(data("customers")):
        message = None
        for i, item in enumerate(customer["messages"]):
            message = inbound.receive_message(
                channel=channels[item["medium"]],
                inbound=InboundMessage(
                    provider_id=f"demo-{n}-{i}", address=item["address"], text=item["text"], name=customer["name"]
                ),
            )
        assert message is not None  # noqa: S101
        conversation = message.conversation
        if customer["reply"]:
            outbound.reply(conversation=conversation, text=customer["reply"], by=operators["alice"])
        if customer.get("resolved"):
            conversations.resolve_conversation(conversation=conversation, by=operators["alice"])
        if customer.get("priority"):
            conversations.set_priority(conversation=conversation, priority=PRIORITIES[customer["priority"]], by=None)
    # After the seeded conversations, which stay with people: a new customer on these meets the bot.
    Channel.objects.filter(pk__in=[channels[medium].pk for medium in BOT_MEDIUMS]).update(bot_enabled=True)
    # The real website chat widget, to try on Parley's own page (/webchat/try/).
    channel_services.create_channel(
        kind="webchat",
        name="Website chat",
        team=support,
        channel_settings={"allowed_origins": " ".join(demo_origins())},
        bot_enabled=True,
    )
    load_knowledge_base()
    load_saved_replies()
    return True
