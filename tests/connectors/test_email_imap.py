"""IMAP against a real Dovecot: cursors, resuming, UIDVALIDITY changes, IDLE, processed-mail actions."""

from __future__ import annotations

import io
import re
import threading
import time
from email.message import EmailMessage

import pytest
from django.core.management import call_command

from connectors.email.imap import Mailbox
from connectors.email.management.commands.fetchmail import Command as Fetchmail
from inbox.models import Channel, InboundEvent
from inbox.services import channels, inbound, outbound
from tests.conftest import wait_for
from tests.fakes.dovecot import dovecot  # noqa: F401 - fixture

# Not transactional: nothing is committed, so no processing task is queued for a worker that another
# test file may have started (its writes would race this file's table flushes on PostgreSQL).
pytestmark = pytest.mark.django_db


def mail(n: int, *, sender: str = "alice@customer.test", to: str = "support@example.test") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Alice <{sender}>"
    message["To"] = to
    message["Subject"] = f"Order {n}"
    message["Message-ID"] = f"<order-{n}-{time.time_ns()}@customer.test>"
    message.set_content(f"Message number {n}")
    return message


@pytest.fixture
def channel(dovecot, support):  # noqa: F811
    address = dovecot.new_mailbox()
    return channels.create_channel(
        kind="email",
        name="Mailbox",
        team=support,
        channel_settings={**dovecot.channel_settings(address), "smtp_host": "127.0.0.1"},
    )


def address_of(channel: Channel) -> str:
    return channel.settings["address"]


def subjects(channel: Channel) -> list[str]:
    from connectors.email.parsing import parse_mail

    events = InboundEvent.objects.filter(channel=channel).order_by("pk")
    return [parse_mail(bytes(e.body)).subject for e in events]


def test_a_poll_stores_each_new_message_once_as_a_raw_event(dovecot, channel):  # noqa: F811
    for n in range(3):
        dovecot.deliver(mail(n), to=address_of(channel))

    first = Mailbox(channel).poll()
    again = Mailbox(channel).poll()

    assert (first.stored, again.stored, again.total) == (3, 0, 0)
    assert subjects(channel) == ["Order 0", "Order 1", "Order 2"]
    event = InboundEvent.objects.filter(channel=channel).first()
    assert event.endpoint == "imap"
    assert event.headers["uid"] == "1"
    channel.refresh_from_db()
    assert channel.state["imap"]["INBOX"]["last_uid"] == 3


def test_an_import_stores_each_batch_with_one_insert_and_the_same_mail_twice_once(dovecot, channel):  # noqa: F811
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    messages = [mail(n) for n in range(5)]
    for message in [*messages, messages[1]]:  # a copy of the same mail (a CC to the same mailbox)
        dovecot.deliver(message, to=address_of(channel))

    with CaptureQueriesContext(connection) as queries:
        report = Mailbox(channel, batch_size=3).poll()

    event_inserts = [q for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "inbox_inboundevent"')]
    assert len(event_inserts) == 2  # two batches of three UIDs
    assert (report.total, report.stored, report.duplicates) == (6, 5, 1)
    assert subjects(channel) == [f"Order {n}" for n in range(5)]
    channel.refresh_from_db()
    assert channel.state["imap"]["INBOX"]["last_uid"] == 6


def test_an_import_interrupted_between_batches_resumes_after_the_last_stored_one(dovecot, channel):  # noqa: F811
    for n in range(5):
        dovecot.deliver(mail(n), to=address_of(channel))

    def crash_after_two_batches(report):
        if report.done == 4:
            raise ConnectionError("the network went away")

    with pytest.raises(ConnectionError):
        Mailbox(channel, batch_size=2, progress=crash_after_two_batches).poll()
    assert InboundEvent.objects.filter(channel=channel).count() == 4

    resumed = Mailbox(channel, batch_size=2).poll()

    assert (resumed.total, resumed.stored) == (1, 1)
    assert subjects(channel) == [f"Order {n}" for n in range(5)]


def test_a_uidvalidity_change_rescans_without_storing_anything_twice(dovecot, channel):  # noqa: F811
    dovecot.deliver(mail(1), to=address_of(channel))
    dovecot.deliver(mail(2), to=address_of(channel))
    Mailbox(channel).poll()

    new_validity = dovecot.change_uidvalidity(address_of(channel))
    dovecot.deliver(mail(3), to=address_of(channel))
    report = Mailbox(channel).poll()

    assert report.rescanned is True
    assert (report.skipped_known, report.stored) == (2, 1)
    assert subjects(channel) == ["Order 1", "Order 2", "Order 3"]
    channel.refresh_from_db()
    assert channel.state["imap"]["INBOX"]["uidvalidity"] == new_validity


def test_processed_mail_can_be_marked_seen_or_moved_only_after_it_is_stored(dovecot, channel):  # noqa: F811
    dovecot.deliver(mail(1), to=address_of(channel))
    Channel.objects.filter(pk=channel.pk).update(settings={**channel.settings, "processed": "seen"})
    channel.refresh_from_db()
    Mailbox(channel).poll()
    assert b"\\Seen" in dovecot.flags(address_of(channel))[1]

    dovecot.deliver(mail(2), to=address_of(channel))
    Channel.objects.filter(pk=channel.pk).update(settings={**channel.settings, "processed": "move:Parley"})
    channel.refresh_from_db()
    Mailbox(channel).poll()

    assert dovecot.status(address_of(channel), "Parley")["MESSAGES"] == 1
    assert dovecot.status(address_of(channel))["MESSAGES"] == 1
    assert InboundEvent.objects.filter(channel=channel).count() == 2


def settle() -> None:
    """When a worker runs (the stack fixture), let it finish the events this test committed."""
    from config.celery import app

    if app.control.ping(timeout=0.3):
        wait_for(lambda: not InboundEvent.objects.filter(status="pending").exists(), timeout=10)


@pytest.mark.django_db(transaction=True)
def test_idle_picks_up_a_delivery_within_seconds(dovecot, channel):  # noqa: F811
    stop = threading.Event()
    watcher = threading.Thread(target=Mailbox(channel).watch, args=(stop,), kwargs={"idle_slice": 0.5}, daemon=True)
    watcher.start()
    try:
        time.sleep(0.5)  # the watcher is connected and idling
        started = time.monotonic()
        dovecot.deliver(mail(7), to=address_of(channel))
        wait_for(lambda: InboundEvent.objects.filter(channel=channel).exists(), timeout=10)
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert subjects(channel) == ["Order 7"]
    settle()


def test_fetchmail_once_prints_progress_and_what_it_stored(dovecot, channel):  # noqa: F811
    for n in range(3):
        dovecot.deliver(mail(n), to=address_of(channel))
    out = io.StringIO()

    call_command(Fetchmail(), "--once", "--channel", str(channel.pk), "--batch", "2", stdout=out)

    assert "2/3 fetched" in out.getvalue()
    assert "Mailbox: 3 new, 0 already stored, last UID 3" in out.getvalue()


def test_fetchmail_refuses_a_channel_that_is_not_an_imap_mailbox(db, sms):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not an active email channel"):
        call_command(Fetchmail(), "--once", "--channel", str(sms.pk))


def test_a_wrong_password_is_an_error_for_the_admin_not_a_crash_of_the_scheduler(dovecot, channel):  # noqa: F811
    from connectors.email.tasks import poll_mailbox

    Channel.objects.filter(pk=channel.pk).update(settings={**channel.settings, "imap_password": "wrong"})

    assert poll_mailbox(channel.pk) == 0
    channel.refresh_from_db()
    assert "AUTHENTICATIONFAILED" in channel.state["imap"]["INBOX"]["error"]
    with pytest.raises(Exception, match=r"(?i)auth"):
        Mailbox(Channel.objects.get(pk=channel.pk)).poll()


def test_a_sent_reply_is_kept_in_the_sent_folder_when_asked(dovecot, channel, alice):  # noqa: F811
    from tests.fakes.smtp import SMTPPeer

    peer = SMTPPeer()
    peer.controller.start()
    try:
        Channel.objects.filter(pk=channel.pk).update(
            settings={**channel.settings, **peer.settings(), "sent_folder": "Sent"}
        )
        dovecot.deliver(mail(1), to=address_of(channel))
        Mailbox(Channel.objects.get(pk=channel.pk)).poll()
        inbound.process_inbound_event(event_id=InboundEvent.objects.get(channel=channel).pk)
        from inbox.models import Conversation

        reply = outbound.reply(conversation=Conversation.objects.get(), text="On its way", by=alice)
        outbound.deliver_message(message_id=reply.pk)
    finally:
        peer.controller.stop()

    assert dovecot.status(address_of(channel), "Sent")["MESSAGES"] == 1


def test_the_imap_password_can_come_from_a_file(dovecot, channel, tmp_path):  # noqa: F811
    from tests.fakes.dovecot import PASSWORD

    secret = tmp_path / "imap-password"
    secret.write_text(PASSWORD + "\n")
    values = {k: v for k, v in channel.settings.items() if k != "imap_password"}
    Channel.objects.filter(pk=channel.pk).update(settings={**values, "imap_password_file": str(secret)})
    dovecot.deliver(mail(1), to=address_of(channel))

    report = Mailbox(Channel.objects.get(pk=channel.pk)).poll()

    assert report.stored == 1


def test_a_message_the_server_cannot_return_never_stops_the_mailbox_and_can_be_replayed(dovecot, channel):  # noqa: F811
    for n in range(3):
        dovecot.deliver(mail(n), to=address_of(channel))
    files = dovecot.message_files(address_of(channel))
    [broken] = [f for f in files if re.search(rb"Subject: Order 1\r?\n", f.read_bytes())]
    broken.chmod(0)  # Dovecot fails the FETCH and drops the connection, as with a damaged file
    try:
        report = Mailbox(channel).poll()
        dovecot.deliver(mail(3), to=address_of(channel))
        later = Mailbox(channel).poll()

        assert (report.stored, report.unreadable, later.stored) == (3, 1, 1)
        assert subjects_of_readable(channel) == ["Order 0", "Order 2", "Order 3"]
        channel.refresh_from_db()
        assert channel.state["imap"]["INBOX"]["last_uid"] == 4
        assert channel.state["imap"]["INBOX"].get("error", "") == ""
        placeholder = InboundEvent.objects.get(channel=channel, headers__uid="2")
        inbound.process_inbound_event(event_id=placeholder.pk)
        placeholder.refresh_from_db()
        assert placeholder.status == "failed"
        assert "could not return message UID 2 of INBOX" in placeholder.error
    finally:
        broken.chmod(0o600)

    inbound.replay_inbound_event(event=placeholder)
    inbound.process_inbound_event(event_id=placeholder.pk)

    placeholder.refresh_from_db()
    assert placeholder.status == "processed"
    from inbox.models import Message

    assert Message.objects.get(channel=channel, direction="in").metadata["subject"] == "Order 1"


def subjects_of_readable(channel: Channel) -> list[str]:
    from connectors.email.parsing import parse_mail

    events = InboundEvent.objects.filter(channel=channel).exclude(body=b"").order_by("pk")
    return [parse_mail(bytes(e.body)).subject for e in events]


def test_an_unreadable_message_during_a_uidvalidity_rescan_does_not_stop_it(dovecot, channel):  # noqa: F811
    dovecot.deliver(mail(1), to=address_of(channel))
    dovecot.deliver(mail(2), to=address_of(channel))
    dovecot.deliver(mail(3), to=address_of(channel))
    Mailbox(channel).poll()
    InboundEvent.objects.filter(channel=channel, headers__uid="3").delete()  # as if it arrived later
    dovecot.change_uidvalidity(address_of(channel))  # the cursor is void: the rescan reads Message-IDs
    files = dovecot.message_files(address_of(channel))
    [broken] = [f for f in files if re.search(rb"Subject: Order 2\r?\n", f.read_bytes())]
    broken.chmod(0)
    try:
        report = Mailbox(channel).poll()
    finally:
        broken.chmod(0o600)

    assert report.rescanned is True
    assert (report.stored, report.duplicates, report.unreadable) == (2, 1, 1)  # Order 3 and a failed event
    assert subjects_of_readable(channel) == ["Order 1", "Order 2", "Order 3"]
