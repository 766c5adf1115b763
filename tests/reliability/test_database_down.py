"""A webhook that arrives while PostgreSQL is unreachable is spooled, acknowledged, and stored once;
one that neither the database nor the disk can take (a full disk, a spool that is not a directory)
gets a 503, which the provider retries.

PostgreSQL is really unreachable here: the web, worker and beat processes reach it through a TCP
proxy the test cuts (tests/reliability/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

import pytest

from inbox.models import InboundEvent, Message
from tests.conftest import wait_for
from tests.fakes.twilio import fixture, form, running, twilio_channel

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

SMS = fixture("sms.txt")


@pytest.fixture
def fake():
    with running() as server:
        yield server


@pytest.fixture
def line(healed, fake, support):
    return twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url, public_base_url=healed.base_url)


def post(fake, line, sid: str, text: str = "Hello"):
    url = f"{line.settings['public_base_url']}/hooks/{line.key}/inbound/"
    body = SMS.replace("SM00000000000000000000000000000001", sid).replace("Hi%2C+my+order+%231001+arrived+broken", text)
    return fake.send_webhook(url, form(body))


def stored(sid: str) -> int:
    return Message.objects.filter(provider_id=sid, direction="in").count()


def test_a_webhook_while_the_database_is_down_is_acknowledged_spooled_and_stored_once(healed, fake, line):
    assert (
        post(fake, line, "SM0000000000000000000000000000A001").status_code == 200
    )  # the web process knows the channel
    wait_for(lambda: stored("SM0000000000000000000000000000A001"))
    healed.database.cut()
    answer = post(fake, line, "SM0000000000000000000000000000A002", "sent during the outage")
    assert answer.status_code == 200
    files = healed.spooled()
    assert len(files) == 1
    assert b"SM0000000000000000000000000000A002" in files[0].read_bytes()
    assert not InboundEvent.objects.filter(dedupe_key__contains="A002").exists()  # not in the database yet
    healed.database.restore()
    # No other webhook arrives: the scheduler's drain stores it, and the worker makes the message.
    wait_for(lambda: stored("SM0000000000000000000000000000A002"), timeout=25, interval=0.2)
    assert not healed.spooled()
    # Twilio delivering it again (or the spool drained twice) stores nothing more.
    assert post(fake, line, "SM0000000000000000000000000000A002", "sent during the outage").status_code == 200
    assert InboundEvent.objects.filter(dedupe_key__contains="A002").count() == 1
    assert stored("SM0000000000000000000000000000A002") == 1


def test_the_web_process_drains_its_spool_as_soon_as_the_database_answers(healed, fake, line):
    assert post(fake, line, "SM0000000000000000000000000000B001").status_code == 200
    healed.database.cut()
    assert [post(fake, line, f"SM0000000000000000000000000000B10{n}").status_code for n in range(3)] == [200] * 3
    spooled = b"".join(path.read_bytes() for path in healed.spooled())
    assert all(f"SM0000000000000000000000000000B10{n}".encode() in spooled for n in range(3))
    healed.database.restore()
    # The next webhook that reaches the database sets the web process draining its spool.
    wait_for(lambda: InboundEvent.objects.filter(dedupe_key__contains="B001").exists(), timeout=30, interval=0.5)
    post(fake, line, "SM0000000000000000000000000000B002")
    wait_for(
        lambda: all(stored(f"SM0000000000000000000000000000B10{n}") == 1 for n in range(3)), timeout=25, interval=0.3
    )
    wait_for(lambda: stored("SM0000000000000000000000000000B002") and not healed.spooled(), timeout=20)
    assert InboundEvent.objects.filter(dedupe_key__contains="SM0000000000000000000000000000B").count() == 5


def test_a_channel_the_process_never_saw_gets_a_503_while_the_database_is_down(healed, fake, support):
    unseen = twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url, public_base_url=healed.base_url)
    healed.database.cut()
    answer = post(fake, unseen, "SM0000000000000000000000000000C001")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
    assert not healed.spooled()


def test_a_webhook_neither_the_database_nor_the_spool_can_take_gets_a_503(healed, fake, line):
    assert post(fake, line, "SM0000000000000000000000000000D001").status_code == 200
    healed.spool_dir.mkdir(parents=True, exist_ok=True)
    aside = healed.spool_dir.with_name("spool-aside")
    healed.spool_dir.rename(aside)
    healed.spool_dir.write_text("not a directory: the disk refuses the spool")
    healed.database.cut()
    try:
        answer = post(fake, line, "SM0000000000000000000000000000D002")
    finally:
        healed.spool_dir.unlink()
        aside.rename(healed.spool_dir)
    assert answer.status_code == 503
    healed.database.restore()
    assert not InboundEvent.objects.filter(dedupe_key__contains="D002").exists()


def _mount_full_disk(folder) -> bool:
    """A 16 KB tmpfs over ``folder``, filled up: a real ENOSPC. False when this user cannot mount."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)], check=False).returncode:
        return False
    with contextlib.suppress(OSError), (folder / "filler").open("wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()
            os.fsync(filler.fileno())
    return True


def test_a_webhook_while_the_database_is_down_and_the_disk_is_full_gets_a_503_and_leaves_no_file(healed, fake, line):
    assert post(fake, line, "SM0000000000000000000000000000E001").status_code == 200
    if not _mount_full_disk(healed.spool_dir):
        pytest.skip("mounting a full tmpfs needs root")
    try:
        healed.database.cut()
        answer = post(fake, line, "SM0000000000000000000000000000E002")
        assert answer.status_code == 503  # Twilio retries; a 200 would lose the message
        assert answer.headers["Retry-After"]
        assert not healed.spooled()
        assert not list((healed.spool_dir / "tmp").glob("*"))  # no half-written file left behind
    finally:
        subprocess.run(["umount", str(healed.spool_dir)], check=True)
    healed.database.restore()
    assert not InboundEvent.objects.filter(dedupe_key__contains="E002").exists()
