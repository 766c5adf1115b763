"""The API's test world: team A ("Support": Alice, a customer with a conversation, a message, a
private note, a customer note) and team B ("Sales": Bob), each with a token; an admin's token."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from api import tokens
from customers.models import Customer
from customers.services import add_customer_note
from inbox.models import Channel, Conversation, Message, Operator, Team
from inbox.services import inbound, outbound
from inbox.transport import InboundMessage

CUSTOMER_NAME = "Quentin Zarnowski"
MARKERS = (CUSTOMER_NAME, "marker-message-7f3", "marker-note-9c1", "marker-cnote-4d2")
PHONE = "+15005550006"


@dataclass
class ApiWorld:
    alice: Operator
    bob: Operator
    admin: Operator
    support: Team
    sales: Team
    sms: Channel
    customer: Customer
    conversation: Conversation
    message: Message
    note: Message
    alice_token: str
    bob_token: str
    admin_token: str


def receive(sms: Channel, provider_id: str, text: str, address: str = PHONE, name: str = "") -> Message:
    return inbound.receive_message(
        channel=sms,
        inbound=InboundMessage(provider_id=provider_id, address=address, text=text, name=name),
    )


@pytest.fixture
def api_world(alice, bob, admin, support, sales, sms) -> ApiWorld:
    message = receive(sms, "SM-api-1", "marker-message-7f3", name=CUSTOMER_NAME)
    conversation = message.conversation
    note = outbound.add_note(conversation=conversation, text="marker-note-9c1", by=alice)
    add_customer_note(customer=conversation.customer, author=alice, text="marker-cnote-4d2")
    return ApiWorld(
        alice=alice,
        bob=bob,
        admin=admin,
        support=support,
        sales=sales,
        sms=sms,
        customer=conversation.customer,
        conversation=conversation,
        message=message,
        note=note,
        alice_token=tokens.issue_operator_token(name="alice's", operator=alice, by=alice).text,
        bob_token=tokens.issue_operator_token(name="bob's", operator=bob, by=bob).text,
        admin_token=tokens.issue_operator_token(name="admin's", operator=admin, by=admin).text,
    )


class Api:
    """A test client that speaks to the API with one token (or none)."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, **query: Any) -> Any:
        return self.client.get(f"/api/v1{path}", query, headers=self.headers)

    def send(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        call = getattr(self.client, method.lower())
        data = b"" if body is None else (body if isinstance(body, bytes | str) else json.dumps(body))
        return call(
            f"/api/v1{path}", data, content_type="application/json", headers={**self.headers, **(headers or {})}
        )

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.send("POST", path, body, headers)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.send("PATCH", path, body)


@pytest.fixture
def as_alice(api_world) -> Api:
    return Api(api_world.alice_token)


@pytest.fixture
def as_bob(api_world) -> Api:
    return Api(api_world.bob_token)


@pytest.fixture
def as_admin(api_world) -> Api:
    return Api(api_world.admin_token)


@pytest.fixture
def anonymous() -> Api:
    return Api(None)
