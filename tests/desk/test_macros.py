"""Macros: staff define a named list of actions; an operator runs it on a conversation in one click,
all or nothing, through the inbox's own services."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from desk import services
from desk.models import Macro
from inbox.models import Conversation, Message
from inbox.services import conversations as conversation_services
from inbox.services import replies
from tests.conftest import PASSWORD


def login(client: Client, who) -> Client:
    client.login(username=who.username, password=PASSWORD)
    return client


@pytest.fixture
def refund_reply(alice, support):
    return replies.create_saved_reply(
        title="Refund sent", text="Hi {customer_first_name}, your refund is on its way.", team=support, by=alice
    )


@pytest.fixture
def refund_done(admin, support, refund, refund_reply) -> Macro:
    return services.create_macro(
        name="Refund done",
        team_id=support.pk,
        actions=[
            {"action": "add_label", "label": refund.pk},
            {"action": "priority", "priority": 2},
            {"action": "assign", "operator": "me"},
            {"action": "reply", "saved_reply": refund_reply.pk},
            {"action": "resolve"},
        ],
        by=admin,
    )


def test_staff_define_a_macro_from_the_form(client, admin, support, refund, refund_reply):
    login(client, admin)
    answer = client.post(
        "/desk/macros/",
        {
            "name": "Refund done",
            "team": support.pk,
            "labels": [refund.pk],
            "priority": "2",
            "assign": "me",
            "saved_reply": refund_reply.pk,
            "resolve": "on",
        },
    )
    assert answer.status_code == 302, answer.content.decode()
    macro = Macro.objects.get()
    assert [step["action"] for step in macro.actions] == ["add_label", "priority", "assign", "reply", "resolve"]
    edit = client.get(f"/desk/macros/{macro.pk}/").content.decode()
    assert 'value="Refund done"' in edit
    assert "checked" in edit


def test_a_macro_needs_a_step_and_a_saved_reply_its_team_may_use(admin, sales, support, refund_reply):
    with pytest.raises(ValidationError):
        services.create_macro(name="Empty", team_id=None, actions=[], by=admin)
    with pytest.raises(ValidationError):
        services.create_macro(
            name="Wrong team", team_id=sales.pk, actions=[{"action": "reply", "saved_reply": refund_reply.pk}], by=admin
        )
    with pytest.raises(ValidationError):
        services.create_macro(name="Odd", team_id=None, actions=[{"action": "delete_everything"}], by=admin)
    assert not Macro.objects.exists()


def test_operators_may_not_define_macros(client, alice, refund_done):
    login(client, alice)
    assert client.get("/desk/macros/").status_code == 403
    assert client.post(f"/desk/macros/{refund_done.pk}/delete/").status_code == 403
    assert Macro.objects.count() == 1


def test_running_a_macro_does_every_step_in_one_click(client, alice, conversation, refund_done):
    login(client, alice)
    thread = client.get(f"/c/{conversation.pk}/").content.decode()
    assert f'<option value="{refund_done.pk}">Refund done</option>' in thread
    answer = client.post(f"/desk/c/{conversation.pk}/macros/", {"macro": refund_done.pk}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    conversation.refresh_from_db()
    assert conversation.labels == ["Refund"]
    assert conversation.priority == 2
    assert conversation.assignee == alice
    assert conversation.status == Conversation.Status.RESOLVED
    sent = Message.objects.get(conversation=conversation, direction="out", kind="message")
    assert sent.text == "Hi Dora, your refund is on its way."
    assert sent.status in {"queued", "sending", "sent", "delivered"}
    steps = list(
        Message.objects.filter(conversation=conversation, kind="activity").order_by("pk").values_list("text", flat=True)
    )
    assert steps[:5] == ["macro_run", "label_added", "priority", "assigned", "resolved"]
    assert "Alice ran the macro Refund done" in client.get(f"/c/{conversation.pk}/").content.decode()


def test_a_refused_reply_undoes_the_whole_macro(client, alice, conversation, refund_done, sms):
    conversation_services.opt_out(channel=sms, customer=conversation.customer)
    login(client, alice)
    answer = client.post(f"/desk/c/{conversation.pk}/macros/", {"macro": refund_done.pk}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 409
    assert "Refund done" in answer.content.decode()
    conversation.refresh_from_db()
    assert conversation.labels == []
    assert conversation.assignee is None
    assert conversation.status == Conversation.Status.OPEN
    assert not Message.objects.filter(conversation=conversation, direction="out").exists()
    assert not Message.objects.filter(conversation=conversation, text="macro_run").exists()


def test_another_teams_macro_and_conversation_are_out_of_reach(client, admin, alice, bob, sales, conversation, refund_done):
    theirs = services.create_macro(name="Sales only", team_id=sales.pk, actions=[{"action": "resolve"}], by=admin)
    login(client, alice)
    assert f'<option value="{theirs.pk}">' not in client.get(f"/c/{conversation.pk}/").content.decode()
    assert client.post(f"/desk/c/{conversation.pk}/macros/", {"macro": theirs.pk}).status_code == 403
    with pytest.raises(PermissionDenied):
        services.run_macro(conversation=conversation, macro=theirs, by=alice)
    client.logout()
    login(client, bob)
    assert client.post(f"/desk/c/{conversation.pk}/macros/", {"macro": refund_done.pk}).status_code == 404
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPEN


@pytest.mark.parametrize("value", ["", "x", "0", "99999999999999999999999", "424242"])
def test_a_bad_macro_id_is_a_clear_400(client, alice, conversation, value):
    login(client, alice)
    answer = client.post(f"/desk/c/{conversation.pk}/macros/", {"macro": value}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 400
