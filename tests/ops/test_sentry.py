"""Errors go to Sentry when SENTRY_DSN is set (a local stand-in for its ingest endpoint), without
personal data; nothing is loaded or sent when it is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, database_url
from tests.fakes.sentry import SentryStandIn

# Every test here starts Parley (its settings and a request) in a process of its own.
pytestmark = pytest.mark.stack

SCRIPT = """
import django; django.setup()
import sys
from django.test import Client, override_settings
with override_settings(ROOT_URLCONF="tests.ops.sentry_urls"):
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "secret-session-cookie"
    response = client.get("/broken/?q=1", headers={"X-Request-ID": "req-sentry-1"}, REMOTE_ADDR="203.0.113.9")
print(response.status_code)
print("sentry_sdk" in sys.modules)
import sentry_sdk
sentry_sdk.flush(5)
"""


def run(**env: str) -> subprocess.CompletedProcess[str]:
    full = {key: value for key, value in os.environ.items() if key != "SENTRY_DSN"}
    full.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database_url(), **env})
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def sentry():
    server = SentryStandIn().start()
    yield server
    server.stop()


def test_an_error_in_a_view_is_reported_without_personal_data(sentry):
    result = run(SENTRY_DSN=sentry.dsn())
    assert result.stdout.split()[:2] == ["500", "True"], result.stderr
    events = sentry.events()
    assert len(events) == 1
    event = events[0]
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "ZeroDivisionError"
    assert exception["value"] == "a bug in a view"
    assert event["transaction"] == "/broken/"
    assert event["tags"]["request_id"] == "req-sentry-1"  # the same id as the log lines
    assert event["environment"] == "development"
    everything = b"".join(sentry.raw).decode()
    assert "secret-session-cookie" not in everything
    assert "203.0.113.9" not in everything
    assert "ip_address" not in json.dumps(event.get("user", {}))


def test_without_a_dsn_the_sdk_is_not_even_loaded(sentry):
    result = run()
    assert result.stdout.split()[:2] == ["500", "False"], result.stderr
    assert sentry.envelopes == []
