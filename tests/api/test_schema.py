"""Schemathesis against the served description (``/api/v1/openapi.json``): for input generated
from the schema, every operation answers without a 5xx, and every answer matches the schema
(status code declared, content type, body). Bounded: a few examples per operation (< 60 s)."""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from api import tokens
from tests.api.conftest import receive

# Loaded once, at collection, from the site as it serves it (WSGI: no database is touched).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", WSGIHandler())


@pytest.fixture
def served(db):
    """The examples' requests run in this thread through the site's WSGI handler, so the test's
    database transaction sees (and rolls back) whatever they write. As Django's own test client
    does, the end of a request must not close the test's connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(alice, sms):
    receive(sms, "SM-schema-1", "Where is my parcel?", name="Schema Customer")
    return tokens.issue_operator_token(name="schemathesis", operator=alice, by=alice).text


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_keeps_to_its_description(case, token, served):
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"})
