from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Every test here starts Parley (its settings, a command or a request) in a process of its own.
pytestmark = pytest.mark.stack


def start_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_mode_refuses_the_development_defaults():
    result = start_settings(PARLEY_PRODUCTION="1")
    assert result.returncode != 0
    assert "Refusing to start in production mode" in result.stderr
    for problem in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        assert problem in result.stderr


def test_production_mode_starts_when_configured(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_urlsafe(50))
    result = start_settings(
        PARLEY_PRODUCTION="1",
        SECRET_KEY_FILE=str(secret),
        ALLOWED_HOSTS="parley.example.com",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stderr


def test_parallel_test_workers_take_their_own_redis_database() -> None:
    """Two xdist workers on one Redis server must not share a database (flushdb, channel groups)."""
    from config.settings import redis_url_for_test_worker

    assert redis_url_for_test_worker("redis://127.0.0.1:6379/0", "gw0") == "redis://127.0.0.1:6379/0"
    assert redis_url_for_test_worker("redis://127.0.0.1:6379/0", "gw1") == "redis://127.0.0.1:6379/1"
    assert redis_url_for_test_worker("redis://127.0.0.1:6379", "gw2") == "redis://127.0.0.1:6379/2"
    assert redis_url_for_test_worker("redis://:secret@cache:6380/3", "gw1") == "redis://:secret@cache:6380/4"
