"""Production settings (issue 12, item 10): ``check --deploy`` is clean, HTTPS is enforced, hosts are explicit."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Every test here starts Parley (its settings, a command or a request) in a process of its own.
pytestmark = pytest.mark.stack

# What a production installation sets (docs/security.md, "Production settings").
PRODUCTION = {
    "PARLEY_PRODUCTION": "1",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "parley.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


# Left out of the child's environment: what the test run or another test may have set (the browser
# tests' conftest sets DJANGO_ALLOW_ASYNC_UNSAFE, which check --deploy rightly refuses).
INHERITED = {
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "BEHIND_PROXY",
    "TRUSTED_PROXY_COUNT",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in INHERITED}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def production_settings(*names: str, **env: str) -> dict[str, object]:
    script = "import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({n: getattr(s, n) for n in %r}))"
    result = run(["-c", script % (names,)], **{**PRODUCTION, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_passes_without_a_warning_in_production_mode():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_check_deploy_passes_behind_a_tls_proxy_too():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION, BEHIND_PROXY="1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_mode_enforces_https():
    values = production_settings(
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_PROXY_SSL_HEADER",
    )
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] is None  # X-Forwarded-Proto is believed only behind a proxy


def test_behind_a_proxy_the_forwarded_scheme_and_one_forwarding_hop_are_trusted():
    values = production_settings("SECURE_PROXY_SSL_HEADER", "TRUSTED_PROXY_COUNT", BEHIND_PROXY="1")
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["TRUSTED_PROXY_COUNT"] == 1


def test_allowed_hosts_are_exactly_what_production_names():
    values = production_settings("ALLOWED_HOSTS")
    assert values["ALLOWED_HOSTS"] == ["parley.example.com"]


def test_production_refuses_to_start_without_allowed_hosts():
    env = {k: v for k, v in PRODUCTION.items() if k != "ALLOWED_HOSTS"}
    result = run(["-c", "import django; django.setup()"], **env)
    assert result.returncode != 0
    assert "Refusing to start in production mode" in result.stderr
    assert "ALLOWED_HOSTS" in result.stderr


def test_production_refuses_a_short_or_repetitive_secret_key():
    for weak in ("s3cret" * 6, "x" * 60):
        result = run(["-c", "import django; django.setup()"], **{**PRODUCTION, "SECRET_KEY": weak})
        assert result.returncode != 0, weak
        assert "SECRET_KEY must be set" in result.stderr


def test_plain_http_is_redirected_to_https_except_the_health_check():
    script = (
        "import django; django.setup(); from django.test import Client; c = Client(HTTP_HOST='parley.example.com');"
        "r = c.get('/login/'); print(r.status_code, r.get('Location', ''));"
        "r = c.get('/healthz'); print(r.status_code)"
    )
    result = run(["-c", script], **PRODUCTION)
    assert result.returncode == 0, result.stderr
    login, health = result.stdout.strip().splitlines()[-2:]
    assert login == "301 https://parley.example.com/login/"
    assert health in {"200", "503"}  # answered over plain HTTP (the database here is not reachable)
