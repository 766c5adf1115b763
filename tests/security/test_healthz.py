"""``/healthz`` (issue 12, item 13): states for anyone, details only for staff, errors in the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, database_url

pytestmark = pytest.mark.django_db


def test_an_anonymous_caller_gets_states_only(client):
    body = client.get("/healthz").json()
    assert set(body) == {"status", "database", "redis", "worker"}
    for name in ("database", "redis", "worker"):
        assert set(body[name]) == {"ok"}
    assert body["database"]["ok"] is True


def test_an_operator_who_is_not_staff_gets_states_only(client, alice):
    client.force_login(alice)
    assert set(client.get("/healthz").json()["database"]) == {"ok"}


def test_staff_get_the_details(client, admin):
    client.force_login(admin)
    body = client.get("/healthz").json()
    assert body["database"]["vendor"] in {"sqlite", "postgresql"}
    assert "workers" in body["worker"]


@pytest.mark.stack
def test_a_failure_is_a_state_for_the_caller_and_its_reason_goes_to_the_log():
    script = (
        "import django; django.setup(); from django.test import Client;"
        "r = Client().get('/healthz'); print(r.status_code); print(r.content.decode())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "DATABASE_URL": database_url(),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status, raw = result.stdout.strip().splitlines()[-2:]
    body = json.loads(raw)
    assert status == "503"
    assert body["redis"] == {"ok": False}
    assert "error" not in raw
    assert "127.0.0.1" not in raw  # the exception's text names the host; the caller never sees it
    assert "health check: Redis does not answer" in result.stderr
    assert "Connection refused" in result.stderr or "Error" in result.stderr
