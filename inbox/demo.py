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
    return True
