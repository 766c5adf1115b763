"""Overload is a 503 with Retry-After, never a 500 (common/overload.py).

The database pool is really exhausted: every connection it may lend is taken (borrowed straight
from psycopg's pool) and its wait shortened, then a request runs in a thread of its own, as under
Daphne, where it must ask the pool for a connection and times out for real.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from psycopg_pool import PoolTimeout

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the pool is PostgreSQL's")


@pytest.fixture
def exhausted_pool(db: None) -> Iterator[None]:
    connection.ensure_connection()  # opens the pool (it opens on first use; a fresh test worker has not used it)
    pool = getattr(connection, "pool", None)  # PostgreSQL's wrapper only
    assert pool is not None, "DATABASE_URL's pool is off (DB_POOL_MAX=0)"
    if pool.closed:  # an earlier test closed the pool; Django made a new one, opened on first need
        pool.open(wait=True)
    timeout = pool.timeout
    held = []
    try:
        while True:  # every connection the pool may lend, held here as by requests still running
            try:
                held.append(pool.getconn(timeout=0.2))
            except PoolTimeout:
                break
        pool.timeout = 0.3  # psycopg's own setting: how long the next borrower waits
        yield
    finally:
        pool.timeout = timeout
        for borrowed in held:
            pool.putconn(borrowed)


def in_another_thread(call: Any) -> Any:
    """Run ``call`` in a new thread: it has no database connection yet and must borrow one."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    thread.join(timeout=30)
    assert result, "the request did not finish"
    return result[0]


def test_an_api_request_that_gets_no_database_connection_is_a_503_problem_with_retry_after(
    api_world: Any, exhausted_pool: None
) -> None:
    headers = {"Authorization": f"Bearer {api_world.alice_token}"}
    response = in_another_thread(lambda: Client().get("/api/v1/conversations", headers=headers))
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "5"
    body = response.json()
    assert body["type"].endswith("/unavailable")
    assert body["status"] == 503


def test_a_page_that_gets_no_database_connection_is_a_503_with_retry_after(exhausted_pool: None) -> None:
    # A session cookie makes login_required read the session table: a query, so a connection.
    def inbox() -> Any:
        client = Client()
        client.cookies["sessionid"] = "x" * 32
        return client.get("/")

    response = in_another_thread(inbox)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"


def test_the_description_declares_the_503_on_every_operation(db: None, client: Client) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "503" in operation["responses"], f"{method.upper()} {path}"
