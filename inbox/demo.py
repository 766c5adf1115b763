"""Demo data for a first start: two teams, operators, customers with history on several channels."""

from __future__ import annotations

from django.db import transaction

from inbox import services
from inbox.models import Channel, Conversation, Operator, Team
from inbox.transport import InboundMessage

DEMO_PASSWORD = "parley-demo"  # noqa: S105 - printed at start, for the demo only

CUSTOMERS = [
    # (name, [(medium, address, text), ...], operator reply)
    (
        "Alice Müller",
        [
            ("sms", "+15005550006", "Hi, my order #1001 arrived broken"),
            ("whatsapp", "+1 500-555-0006", "Here is a photo of the box, can you send a new one?"),
        ],
        "Sorry to hear that, Alice! A replacement is on its way.",
    ),
    (
        "Bruno Costa",
        [("email", "bruno@customer.test", "Can I change the delivery address of order #1002?")],
        "Yes, reply with the new address and we will update it.",
    ),
    ("Chen Wei", [("telegram", "700000001", "Do you ship to Singapore?")], ""),
    ("Dana Levi", [("messenger", "6100000000000002", "I want to upgrade to the business plan")], ""),
    (
        "Emre Yilmaz",
        [
            ("sms", "+15005550010", "Is the store open on Sunday?"),
            ("email", "emre@customer.test", "Following up on my SMS about Sunday opening hours"),
        ],
        "",
    ),
    ("Farah Ahmadi", [("viber", "01234567890A=", "سلام، سفارش من کی می‌رسد؟")], ""),
    ("Gleb Ivanov", [("webchat", "visitor-42", "Здравствуйте! Где мой заказ?")], ""),
]


ARTICLES = [
    (
        "Delivery times",
        "Orders ship within one working day; delivery takes 2-4 working days in the US and 5-10 abroad.",
        [
            "When will my order arrive?",
            "How long does shipping take?",
            "Do you ship to Singapore?",
            "Когда придёт мой заказ?",
            "Коли прийде моє замовлення?",
            "سفارش من کی می‌رسد؟",
        ],
    ),
    (
        "Damaged or broken items",
        "Sorry about that! Send us a photo of the item and the box, and we will ship a replacement at once.",
        ["My order arrived broken", "The item is damaged", "The box was crushed and the product is broken"],
    ),
    (
        "Changing the delivery address",
        "Until an order ships you can change its address: reply with the order number and the new address.",
        ["Can I change the delivery address?", "I moved, can you send it to another address?"],
    ),
    (
        "Opening hours",
        "Our store is open Monday to Saturday 9:00-19:00 and Sunday 10:00-16:00.",
        ["Is the store open on Sunday?", "What are your opening hours?", "When do you close today?"],
    ),
    (
        "Upgrading your plan",
        "You can upgrade at any time under Settings → Billing; the difference is charged pro rata.",
        ["I want to upgrade to the business plan", "How do I change my subscription?"],
    ),
]


def load_knowledge_base() -> None:
    """A small knowledge base to try the bot with (switch the bot on for a channel in the admin)."""
    from inbox.triage.models import Article, ExampleQuestion

    for title, answer, questions in ARTICLES:
        article = Article.objects.create(title=title, answer=answer, language="en")
        ExampleQuestion.objects.bulk_create([ExampleQuestion(article=article, text=q) for q in questions])


@transaction.atomic
def load_demo() -> bool:
    """Create the demo once; returns False when operators exist already."""
    from connectors.simulator import simulated_channel

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
    for n, (name, messages, answer) in enumerate(CUSTOMERS):
        message = None
        for i, (medium, address, text) in enumerate(messages):
            message = services.receive_message(
                channel=channels[medium],
                inbound=InboundMessage(provider_id=f"demo-{n}-{i}", address=address, text=text, name=name),
            )
        assert message is not None  # noqa: S101
        conversation = message.conversation
        if answer:
            services.reply(conversation=conversation, text=answer, by=operators["alice"])
        if n == 1:
            services.resolve_conversation(conversation=conversation, by=operators["alice"])
        if n == 3:
            services.set_priority(conversation=conversation, priority=Conversation.Priority.HIGH, by=None)
    load_knowledge_base()
    return True
