"""The backup procedure of docs/operations.md, run for real: pg_dump a database with messages,
pg_restore it into a fresh database, and find every message there."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from inbox.models import Message
from inbox.services import outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage

pytestmark = [
    pytest.mark.django_db(transaction=True),  # pg_dump reads what is committed
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="the procedure is PostgreSQL's"
    ),
    pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed"),
]


def libpq_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {**os.environ, "PGHOST": str(db.get("HOST") or "127.0.0.1"), "PGPORT": str(db.get("PORT") or 5432)}
    env["PGUSER"] = str(db.get("USER") or "postgres")
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return env


@pytest.mark.stack
def test_a_dump_restored_into_a_fresh_database_has_every_message(sms, alice, tmp_path):
    for n in range(20):
        received = receive_message(
            channel=sms,
            inbound=InboundMessage(provider_id=f"b-{n}", address=f"+1500555{n:04d}", text=f"Привет {n}: where is it?"),
        )
        outbound.reply(conversation=received.conversation, text=f"On its way, {n} ✓", by=alice)
    outbound.add_note(conversation=received.conversation, text="a private note", by=alice)
    # Not the delivery status: a worker of the session's stack may be sending the replies meanwhile.
    originals = sorted((str(m.public_id), m.text, m.kind, m.direction) for m in Message.objects.all())
    assert len(originals) >= 41

    env = libpq_env()
    dump = tmp_path / "parley.dump"
    source = connection.settings_dict["NAME"]
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", source], env=env, check=True, timeout=120)
    fresh = f"obs_restore_{uuid.uuid4().hex[:8]}"
    subprocess.run(["createdb", fresh], env=env, check=True, timeout=60)
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={fresh}", str(dump)],
            env=env,
            check=True,
            timeout=120,
        )
        with psycopg.connect(
            dbname=fresh, host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"], password=env.get("PGPASSWORD")
        ) as restored:
            rows = restored.execute("SELECT public_id::text, text, kind, direction FROM inbox_message").fetchall()
            migrations = restored.execute("SELECT count(*) FROM django_migrations").fetchone()
        assert sorted(rows) == originals
        assert migrations is not None
        assert migrations[0] > 10  # the schema's history came along: `migrate` on it has nothing to do
    finally:
        subprocess.run(["dropdb", "--if-exists", fresh], env=env, check=False, timeout=60)
