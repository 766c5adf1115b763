"""Reports and search read from a real PostgreSQL streaming replica (a primary and a replica started
here with initdb and pg_basebackup), and fall back to the primary when the replica lags or is down;
a browser that just wrote reads from the primary."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import ROOT

BINARIES = ("initdb", "pg_ctl", "pg_basebackup", "createdb")
pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(
        not all(shutil.which(b) for b in BINARIES), reason="PostgreSQL's server tools are not installed"
    ),
    pytest.mark.skipif(settings.EMBEDDED, reason="needs a Redis the started processes share (REDIS_URL)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL's server refuses to run as root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=180, **kwargs)


class Clusters:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.primary, self.replica = base / "primary", base / "replica"
        self.primary_port, self.replica_port = free_port(), free_port()

    def url(self, port: int) -> str:
        return f"postgres://postgres@127.0.0.1:{port}/parley"

    def start(self) -> None:
        run(
            as_postgres(
                ["initdb", "-D", str(self.primary), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
            )
        )
        with (self.primary / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.primary_port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.base}'\n"
                "wal_level = replica\nmax_wal_senders = 4\nfsync = off\n"
            )
        self.pg_ctl(self.primary, "start")
        run(["createdb", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres", "parley"])
        run(
            as_postgres(
                [
                    "pg_basebackup",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.primary_port),
                    "-U",
                    "postgres",
                    "-D",
                    str(self.replica),
                    "-R",
                    "-X",
                    "stream",
                ]
            )
        )
        with (self.replica / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.replica_port}\nhot_standby = on\n")
        self.pg_ctl(self.replica, "start")

    def pg_ctl(self, data: Path, action: str) -> None:
        log = self.base / f"{data.name}.log"
        run(as_postgres(["pg_ctl", "-D", str(data), "-l", str(log), "-w", "-m", "fast", action]))

    def stop(self) -> None:
        for data in (self.replica, self.primary):
            subprocess.run(
                as_postgres(["pg_ctl", "-D", str(data), "-w", "-m", "immediate", "stop"]),
                capture_output=True,
                timeout=60,
            )


@pytest.fixture(scope="module")
def clusters() -> Iterator[Clusters]:
    base = Path(tempfile.mkdtemp(prefix="obs-replica-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    found = Clusters(base)
    try:
        found.start()
        yield found
    finally:
        found.stop()
        shutil.rmtree(base, ignore_errors=True)


def django(clusters: Clusters, script: str, **env: str) -> dict:
    full = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": clusters.url(clusters.primary_port),
        "DATABASE_REPLICA_URL": clusters.url(clusters.replica_port),
        "DB_POOL_MAX": "0",
        "BOT_ENCODER": "tfidf",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + script],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


SETUP = """
import json
from django.core.management import call_command
call_command("migrate", verbosity=0)
from inbox.models import Operator, Team
from inbox.services import channels
Operator.objects.create_superuser("root", "root@example.test", "a-password-0123")
channels.create_channel(kind="simulator", name="SMS", team=Team.objects.create(name="Support"), channel_settings={"medium": "sms"})
print(json.dumps({"ok": True}))
"""

SCENARIO = """
import json, time
from django.conf import settings
from django.db import connections
from django.test import Client
from inbox.models import Channel, Message, Operator
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from ops.replica import PIN_COOKIE, health

sms = Channel.objects.get(name="SMS")
def receive(provider_id, text):
    receive_message(channel=sms, inbound=InboundMessage(provider_id=provider_id, address="+15005550006", text=text))
def on_replica(text):
    deadline = time.monotonic() + 20
    while not Message.objects.using("replica").filter(text=text).exists():
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.1)
client = Client()
client.force_login(Operator.objects.get(username="root"))
def found(word):
    # Every message says "parcel"; the page shows the query itself, so look for the other word.
    response = client.get("/search/?q=parcel")
    assert response.status_code == 200, response.status_code
    return word in response.content.decode()

out = {}
receive("r-1", "replicated parcel")
on_replica("replicated parcel")
out["replicated_found"] = found("replicated")
out["reports"] = client.get("/reports/").status_code

connections["replica"].cursor().execute("SELECT pg_wal_replay_pause()")
receive("r-2", "paused parcel")
out["paused_found_on_replica_reads"] = found("paused")

client.post("/i18n/setlang/", {"language": "en"})
out["pinned"] = PIN_COOKIE in client.cookies
out["paused_found_after_a_write"] = found("paused")
del client.cookies[PIN_COOKIE]
out["paused_found_after_the_pin"] = found("paused")

time.sleep(1.5)
settings.DATABASE_REPLICA_MAX_LAG = 0.5
health.forget()
out["paused_found_when_lagging"] = found("paused")
connections["replica"].cursor().execute("SELECT pg_wal_replay_resume()")
print(json.dumps(out))
"""

DOWN = """
import json, time
from django.test import Client
from inbox.models import Operator
client = Client()
client.force_login(Operator.objects.get(username="root"))
timings, found = [], []
for _ in range(3):
    started = time.monotonic()
    response = client.get("/search/?q=parcel")
    timings.append(time.monotonic() - started)
    found.append(response.status_code == 200 and "paused" in response.content.decode())
print(json.dumps({"found": found, "timings": timings}))
"""


def test_reports_and_search_read_from_the_replica_and_fall_back_to_the_primary(clusters):
    django(clusters, SETUP)
    seen = django(clusters, SCENARIO, DATABASE_REPLICA_MAX_LAG="60")
    assert seen["replicated_found"] is True  # the replica has it
    assert seen["reports"] == 200
    # Replay paused: the replica does not have the new message, and search (reading it) does not find it.
    assert seen["paused_found_on_replica_reads"] is False
    # The operator who just wrote reads from the primary for a while.
    assert seen["pinned"] is True
    assert seen["paused_found_after_a_write"] is True
    assert seen["paused_found_after_the_pin"] is False
    # Lagging past DATABASE_REPLICA_MAX_LAG: the primary answers.
    assert seen["paused_found_when_lagging"] is True

    clusters.pg_ctl(clusters.replica, "stop")
    down = django(clusters, DOWN)
    assert down["found"] == [True, True, True]  # the primary answers while the replica is down
    assert max(down["timings"][1:]) < 1.0  # one failed connection, then no attempt per request
