"""HTTP through the ASGI application as Daphne serves it: a sync view's request is one thread hop
(common.asgi.SyncViews); an async view (the website chat's long poll) stays on the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asgiref import sync
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.db import connections
from django.test import Client

from common.asgi import SyncViews
from inbox.models import Operator

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the trips between the event loop and threads (asgiref's adapters, spied on)."""
    counted = {"to_thread": 0, "to_loop": 0}
    to_thread, to_loop = sync.SyncToAsync.__call__, sync.AsyncToSync.__call__

    async def counting_to_thread(self, *args, **kwargs):
        counted["to_thread"] += 1
        return await to_thread(self, *args, **kwargs)

    def counting_to_loop(self, *args, **kwargs):
        counted["to_loop"] += 1
        return to_loop(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting_to_thread)
    monkeypatch.setattr(sync.AsyncToSync, "__call__", counting_to_loop)
    return counted


@pytest.fixture(autouse=True)
async def close_connections() -> AsyncIterator[None]:
    """The test's own database connections (opened in threads) are closed before its flush."""
    yield
    await database_sync_to_async(connections.close_all)()


async def request(method: str, path: str, *, headers=()) -> dict:
    """The answer of ``config.asgi.application`` to one request: status, headers, the whole body.

    Read chunk by chunk (channels' ``HttpCommunicator`` expects one): a streamed answer ends with
    a body message that has no ``body``, as the ASGI spec allows."""
    from config.asgi import application

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=10)
    assert start["type"] == "http.response.start"
    body = b""
    while True:
        chunk = await communicator.receive_output(timeout=10)
        body += chunk.get("body", b"")
        if not chunk.get("more_body", False):
            break
    await communicator.wait(timeout=10)
    return {"status": start["status"], "headers": start["headers"], "body": body}


def headers_of(response: dict) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in response["headers"]}


async def test_a_page_runs_its_middleware_and_view_in_one_trip_to_a_thread(hops):
    response = await request("GET", "/login/")
    assert response["status"] == 200
    headers = headers_of(response)
    assert b"content-language" in headers  # LocaleMiddleware ran
    assert headers[b"x-content-type-options"] == b"nosniff"  # SecurityMiddleware ran
    assert b"content-security-policy" in headers
    # Django's own ASGI handler takes ~20 trips here: one per middleware hook, the view, the signals.
    assert hops == {"to_thread": 1, "to_loop": 0}


async def test_a_page_that_does_not_exist_is_the_404_page(hops):
    response = await request("GET", "/no/such/page/")
    assert response["status"] == 404
    assert hops["to_thread"] == 1


async def test_a_streamed_answer_reads_its_rows_and_returns_its_connection(admin: Operator):
    def staff_cookie() -> bytes:
        client = Client()
        client.force_login(admin)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    cookie = await database_sync_to_async(staff_cookie)()
    response = await request("GET", "/audit/export/", headers=[(b"cookie", cookie)])
    assert response["status"] == 200
    assert headers_of(response)[b"content-type"].startswith(b"text/csv")
    lines = response["body"].decode().splitlines()
    assert len(lines) >= 2  # the header and the export's own entry ("exported")
    assert "exported" in response["body"].decode().lower()


async def test_an_async_view_is_served_on_the_event_loop_without_holding_a_thread(hops):
    """The long poll waits up to half a minute: its middleware chain must not wrap it in a thread."""
    response = await request("POST", "/webchat/no-such-chat/poll/", headers=[(b"origin", b"https://shop.example.test")])
    assert 400 <= response["status"] < 500
    assert hops["to_loop"] == 0  # no async_to_sync: nothing blocks a thread while the view awaits


def test_only_a_coroutine_view_goes_to_djangos_handler():
    assert SyncViews.view_is_async("/webchat/somekey/poll/") is True
    assert SyncViews.view_is_async("/webchat/somekey/frames/") is True
    assert SyncViews.view_is_async("/login/") is False
    assert SyncViews.view_is_async("/api/v1/conversations") is False
    assert SyncViews.view_is_async("/no/such/page/") is False
