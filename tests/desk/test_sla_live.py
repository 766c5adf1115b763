"""A missed SLA target reaches the assignee and the team's admins live, over the operators' real
websocket consumer and the real Redis channel layer; another team's operator hears nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from desk import services
from desk.models import ConversationSla, SlaPolicy
from inbox.services import conversations
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.inbox.realtime.test_consumers import frames_until, is_json, nothing_matching, socket_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


def late_conversation(admin, alice, sms, support) -> int:
    services.forget_policies()
    admin.teams.add(support)
    services.save_policy(policy=SlaPolicy(name="Fast", team=support, first_response_minutes=1), by=admin)
    inbound = InboundMessage(provider_id="in-1", address="+15005550006", text="Hello?", name="Dora")
    conversation = receive_message(channel=sms, inbound=inbound).conversation
    conversations.assign_conversation(conversation=conversation, operator=alice, by=None)
    past = timezone.now() - timedelta(minutes=1)
    ConversationSla.objects.filter(conversation=conversation).update(first_response_due=past, next_due=past)
    return conversation.pk


async def test_a_breach_alerts_the_assignee_and_the_team_admin_once_and_nobody_else(admin, alice, bob, sms, support):
    pk = await database_sync_to_async(late_conversation)(admin, alice, sms, support)
    async with socket_for(alice) as alice_socket, socket_for(admin) as admin_socket, socket_for(bob) as bob_socket:
        marked = await database_sync_to_async(services.sweep_breaches)()
        assert len(marked) == 1
        alert = is_json("alert", conversation=pk)
        frame = await frames_until(alice_socket, alert)
        assert frame["kind"] == "sla_breached"
        assert frame["title"] == "SLA target missed: Dora"
        assert frame["url"] == f"/c/{pk}/"
        assert await frames_until(admin_socket, alert)
        assert await nothing_matching(bob_socket, is_json("alert"))
        assert await database_sync_to_async(services.sweep_breaches)() == []
        assert await nothing_matching(alice_socket, alert)
