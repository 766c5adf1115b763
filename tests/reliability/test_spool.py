"""The webhook spool on its own: a durable file per event, read back as stored, drained once."""

from __future__ import annotations

import time

import pytest

from inbox import spool
from inbox.models import InboundEvent
from inbox.services import inbound


@pytest.fixture
def folder(settings, tmp_path):
    settings.WEBHOOK_SPOOL_DIR = tmp_path / "spool"
    return tmp_path / "spool"


def spooled(channel_id: int, key: str = "inbound:SM1") -> None:
    spool.write(
        channel_id=channel_id,
        endpoint="inbound",
        dedupe_key=key,
        body=b"From=%2B15005550006&Body=\xd0\x9f\xd1\x80\xd0\xb8",
        headers={"X-Twilio-Signature": "abc"},
        content_type="application/x-www-form-urlencoded",
    )


def test_an_event_is_one_file_in_place_and_reads_back_as_the_webhook_stored_it(folder):
    spooled(7)
    [path] = spool.pending()
    assert path.parent == folder
    assert not list((folder / "tmp").iterdir())  # renamed into place, nothing half-written left
    event = spool.read(path)
    assert (event.channel_id, event.endpoint, event.dedupe_key) == (7, "inbound", "inbound:SM1")
    assert event.body == b"From=%2B15005550006&Body=\xd0\x9f\xd1\x80\xd0\xb8"
    assert event.headers == {"X-Twilio-Signature": "abc"}
    assert event.content_type == "application/x-www-form-urlencoded"


def test_a_spool_that_cannot_be_written_says_the_event_is_not_durable(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.WEBHOOK_SPOOL_DIR = blocker / "spool"
    with pytest.raises(spool.NotDurable):
        spooled(7)


@pytest.mark.django_db(transaction=True)
def test_the_same_event_spooled_twice_is_stored_once_and_the_files_are_gone(folder, sms):
    spooled(sms.pk)
    spooled(sms.pk)  # the provider retried during the outage
    assert len(spool.pending()) == 2
    assert inbound.drain_spool() == 1
    assert InboundEvent.objects.filter(channel=sms, dedupe_key="inbound:SM1").count() == 1
    assert spool.pending() == []
    assert inbound.drain_spool() == 0


@pytest.mark.django_db(transaction=True)
def test_a_file_for_a_deleted_channel_or_an_unreadable_one_is_set_aside(folder, sms):
    spooled(sms.pk + 1000)
    (folder / "00000000000000000000-1-garbage.json").write_text("{not json")
    assert inbound.drain_spool() == 0
    assert spool.pending() == []
    assert len(list((folder / "failed").iterdir())) == 2


def test_after_a_database_error_one_request_at_a_time_tries_the_database_again():
    spool.note_database_down()
    assert spool.skip_database()  # within the quiet period
    time.sleep(spool.DOWN_SECONDS + 0.1)  # the quiet period is over
    assert not spool.skip_database()  # this request probes
    assert spool.skip_database()  # the others keep spooling meanwhile
    spool.note_database_up()
    assert not spool.skip_database()
    assert not spool.database_down()
