"""Every API route, tried anonymously (401) and with another team's token (404 for team A's
objects, never a marker of theirs, nothing of theirs changed); the owner's token works."""

from __future__ import annotations

import re

import pytest

from api.main import api
from customers.models import CustomerNote
from inbox.models import Conversation, Message
from tests.api.conftest import MARKERS, Api

# Every operation of the API: (method, path template). A new operation without a line here fails
# test_every_operation_is_walked.
OPERATIONS = {
    ("GET", "/conversations"),
    ("GET", "/conversations/{conversation_id}"),
    ("GET", "/conversations/{conversation_id}/messages"),
    ("POST", "/conversations/{conversation_id}/messages"),
    ("POST", "/conversations/{conversation_id}/assignment"),
    ("POST", "/conversations/{conversation_id}/status"),
    ("POST", "/conversations/{conversation_id}/priority"),
    ("GET", "/customers"),
    ("GET", "/customers/{customer_id}"),
    ("PATCH", "/customers/{customer_id}"),
    ("GET", "/customers/{customer_id}/notes"),
    ("POST", "/customers/{customer_id}/notes"),
    ("GET", "/me"),
    ("GET", "/teams"),
    ("GET", "/teams/{team_id}"),
    ("GET", "/operators"),
    ("GET", "/operators/{operator_id}"),
    ("GET", "/channels"),
    ("GET", "/channels/{channel_id}"),
    ("GET", "/saved-replies"),
    ("GET", "/saved-replies/{saved_reply_id}"),
    ("GET", "/articles"),
    ("GET", "/articles/{article_id}"),
    ("GET", "/reports/channels"),
}

BODIES = {
    "/conversations/{conversation_id}/messages": {"type": "reply", "text": "marker-forged"},
    "/conversations/{conversation_id}/assignment": {"operator_id": None},
    "/conversations/{conversation_id}/status": {"status": "resolved"},
    "/conversations/{conversation_id}/priority": {"priority": 3},
    "/customers/{customer_id}": {"name": "forged"},
    "/customers/{customer_id}/notes": {"text": "marker-forged"},
}


def schema_operations():
    schema = api.get_openapi_schema()
    found = set()
    for path, operations in schema["paths"].items():
        for method in operations:
            found.add((method.upper(), path.removeprefix("/api/v1")))
    return found


def test_every_operation_is_walked():
    assert schema_operations() == OPERATIONS


def fill(path, w):
    values = {
        "conversation_id": w.conversation.pk,
        "customer_id": w.customer.pk,
        "team_id": w.support.pk,
        "operator_id": w.alice.pk,
        "channel_id": w.sms.pk,
        "saved_reply_id": 1,
        "article_id": 1,
    }
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)


def state(w):
    conversation = Conversation.objects.get(pk=w.conversation.pk)
    return (
        conversation.status,
        conversation.assignee_id,
        conversation.priority,
        Message.objects.count(),
        CustomerNote.objects.count(),
        type(w.customer).objects.get(pk=w.customer.pk).name,
    )


def call(client: Api, method, path, body):
    if method == "GET":
        return client.get(path)
    return client.send(method, path, body)


@pytest.mark.parametrize(("method", "template"), sorted(OPERATIONS))
def test_anonymous_gets_401_everywhere(api_world, anonymous, method, template):
    before = state(api_world)
    response = call(anonymous, method, fill(template, api_world), BODIES.get(template))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not [m for m in MARKERS if m in response.content.decode()]
    assert state(api_world) == before


@pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer parley_00000000_" + "x" * 43, "Basic YWxpY2U6eA==", ""])
def test_a_bad_token_is_401(api_world, header):
    client = Api(None)
    client.headers = {"Authorization": header} if header else {}
    assert client.get("/conversations").status_code == 401


@pytest.mark.parametrize(("method", "template"), sorted(OPERATIONS))
def test_another_teams_token_sees_and_changes_nothing_of_team_a(api_world, as_bob, method, template):
    before = state(api_world)
    response = call(as_bob, method, fill(template, api_world), BODIES.get(template))
    text = response.content.decode()
    assert response.status_code < 500
    assert not [m for m in MARKERS if m in text], f"{method} {template} leaks {text[:300]}"
    assert state(api_world) == before
    if "{" in template:
        # Team A's object: not found (the knowledge base is staff-only: forbidden for any operator).
        expected = 403 if template.startswith("/articles") else 404
        assert response.status_code == expected, (method, template, response.status_code, text[:300])
        assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "template"), sorted(OPERATIONS))
def test_the_owner_gets_what_another_team_is_refused(api_world, as_alice, as_admin, method, template):
    client = as_admin if template.startswith(("/articles", "/saved-replies/")) else as_alice
    if template == "/articles/{article_id}" or template == "/saved-replies/{saved_reply_id}":
        pytest.skip("objects of their own: tests/api/test_directory.py and test_knowledge.py")
    response = call(client, method, fill(template, api_world), BODIES.get(template))
    assert response.status_code in {200, 201}, (method, template, response.status_code, response.content[:300])
