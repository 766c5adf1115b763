"""The incoming-call popup (``/twilio/voice/caller/``) names only customers the operator may see."""

from __future__ import annotations

from inbox.services import inbound
from inbox.transport import InboundMessage


def known_caller(channel) -> None:
    inbound.receive_message(
        channel=channel,
        inbound=InboundMessage(provider_id="x1", address="+15005550006", text="Hi", name="Alice Customer"),
    )


def test_another_teams_customer_calling_is_an_unknown_caller(client, sms, bob):
    known_caller(sms)  # Support's customer; Bob is in Sales
    client.force_login(bob)

    who = client.get("/twilio/voice/caller/", {"number": "+1 500 555 0006"})

    assert who.status_code == 200
    assert who.json() == {"number": "+15005550006", "name": "", "conversation_url": ""}
    assert b"Alice Customer" not in who.content


def test_the_operators_own_teams_customer_is_named(client, sms, alice):
    known_caller(sms)
    client.force_login(alice)

    who = client.get("/twilio/voice/caller/", {"number": "+15005550006"}).json()

    assert who["name"] == "Alice Customer"
    assert who["conversation_url"].startswith("/c/")


def test_staff_see_every_caller(client, sms, admin):
    known_caller(sms)
    client.force_login(admin)

    assert client.get("/twilio/voice/caller/", {"number": "+15005550006"}).json()["name"] == "Alice Customer"


def test_an_anonymous_visitor_learns_nothing(client, sms):
    known_caller(sms)

    response = client.get("/twilio/voice/caller/", {"number": "+15005550006"})

    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert b"Alice" not in response.content
