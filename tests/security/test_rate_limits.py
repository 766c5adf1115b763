"""Webhook rate limits: refused requests are counted per address and per channel key; past the limit
they get 429 with Retry-After, cheaply; a correctly signed delivery is never counted nor refused."""

from __future__ import annotations

import json
import secrets

import pytest

from connectors.simulator import SIGNATURE_HEADER, SimulatorConnector
from inbox.models import InboundEvent

pytestmark = pytest.mark.django_db

LIMIT = 5


@pytest.fixture(autouse=True)
def small_limit(settings):
    # A day-long window: no window boundary passes in the middle of a test.
    settings.WEBHOOK_FAILURE_LIMIT = f"{LIMIT}/86400"


def address() -> str:
    """An address of the documentation range that no other test uses."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def body(n: int = 1) -> bytes:
    return json.dumps({"id": f"m{n}", "from": "+15005550006", "text": "hi"}).encode()


def post(client, key: str, data: bytes, *, ip: str, signature: str = "0" * 64):
    return client.post(
        f"/hooks/{key}/inbound/",
        data=data,
        content_type="application/json",
        headers={SIGNATURE_HEADER: signature},
        REMOTE_ADDR=ip,
    )


def signed(client, channel, data: bytes, *, ip: str):
    return post(client, channel.key, data, ip=ip, signature=SimulatorConnector(channel).sign(data))


def test_a_flood_of_forged_requests_gets_429_with_retry_after(client, sms):
    ip = address()
    statuses = [post(client, sms.key, body(), ip=ip).status_code for _ in range(LIMIT + 3)]
    assert statuses == [403] * LIMIT + [429] * 3
    refused = post(client, sms.key, body(), ip=ip)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 86400
    assert not InboundEvent.objects.exists()


def test_an_address_past_the_limit_is_refused_before_the_database(client, db, django_assert_num_queries):
    ip = address()
    for _ in range(LIMIT):
        assert post(client, secrets.token_urlsafe(18), b"{}", ip=ip).status_code == 404
    with django_assert_num_queries(0):
        response = post(client, secrets.token_urlsafe(18), b"{}", ip=ip)
    assert response.status_code == 429


def test_scanning_for_channel_keys_blocks_the_scanner_only(client, sms):
    scanner = address()
    for _ in range(LIMIT):
        post(client, secrets.token_urlsafe(18), b"{}", ip=scanner)
    assert post(client, secrets.token_urlsafe(18), b"{}", ip=scanner).status_code == 429
    assert signed(client, sms, body(), ip=address()).status_code == 200


def test_a_signed_delivery_is_accepted_while_its_key_is_flooded_from_many_addresses(client, sms):
    for _ in range(LIMIT):
        assert post(client, sms.key, body(), ip=address()).status_code == 403
    # Another forged request on the key: refused as too many, whatever its address.
    assert post(client, sms.key, body(), ip=address()).status_code == 429
    # The provider's correctly signed delivery goes through and is stored.
    assert signed(client, sms, body(7), ip=address()).status_code == 200
    assert InboundEvent.objects.filter(channel=sms, dedupe_key="inbound:m7").exists()


def test_signed_deliveries_are_never_counted(client, sms):
    provider = address()
    for n in range(LIMIT * 3):
        assert signed(client, sms, body(n), ip=provider).status_code == 200
    assert InboundEvent.objects.filter(channel=sms).count() == LIMIT * 3


def test_the_limit_can_be_switched_off(client, sms, settings):
    settings.WEBHOOK_FAILURE_LIMIT = "0/60"
    ip = address()
    assert {post(client, sms.key, body(), ip=ip).status_code for _ in range(LIMIT + 3)} == {403}


# -- through the ASGI application, as Daphne serves webhooks (the lean path without middleware) -------


async def asgi_post(path: str, data: bytes, headers: list[tuple[bytes, bytes]], *, ip: str):
    from config.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
        "client": (ip, 40000),
        "server": ("testserver", 80),
    }
    incoming = [{"type": "http.request", "body": data, "more_body": False}]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    start = sent[0]
    return start["status"], {name.decode().lower(): value.decode() for name, value in start["headers"]}


@pytest.mark.django_db(transaction=True)
async def test_the_lean_asgi_path_refuses_a_flood_with_429_too(sms):
    ip = address()
    forged = [(SIGNATURE_HEADER.lower().encode(), b"0" * 64)]
    for _ in range(LIMIT):
        status, _headers = await asgi_post(f"/hooks/{sms.key}/inbound/", body(), forged, ip=ip)
        assert status == 403
    status, headers = await asgi_post(f"/hooks/{sms.key}/inbound/", body(), forged, ip=ip)
    assert status == 429
    assert int(headers["retry-after"]) > 0
