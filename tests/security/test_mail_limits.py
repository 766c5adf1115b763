"""Mail that costs too much: caps on parts, attachments and bytes, absurd nesting, oversized mail on IMAP.

The messages are built here, in the spirit of CPython's e-mail test corpus (odd but legal MIME),
not read from CPython's files.
"""

from __future__ import annotations

import logging
import time
from email.message import EmailMessage

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors.email.imap import Mailbox
from inbox.models import Attachment, InboundEvent, Message
from inbox.services import channels, inbound
from tests.fakes.dovecot import dovecot  # noqa: F401 - fixture

HEAD = "From: Alice Customer <alice@customer.test>\r\nTo: support@example.test\r\nSubject: {subject}\r\nMessage-ID: <{mid}@customer.test>\r\nMIME-Version: 1.0\r\n"


def many_parts(count: int, *, text_first: bool = True, size: int = 4, mid: str = "many") -> bytes:
    """A multipart/mixed with ``count`` small attachments and one plain text, first or last."""
    text = "--BB\r\nContent-Type: text/plain\r\n\r\nPlease see the photos of the broken vase.\r\n"
    files = "".join(
        f'--BB\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="f{n}.bin"\r\n\r\n'
        f"{str(n).zfill(size)[:size]}\r\n"
        for n in range(count)
    )
    body = text + files if text_first else files + text
    head = HEAD.format(subject="Photos", mid=mid) + 'Content-Type: multipart/mixed; boundary="BB"\r\n\r\n'
    return (head + body + "--BB--\r\n").encode()


def nested(levels: int, *, mid: str = "deep") -> bytes:
    """A text wrapped in ``levels`` multiparts, each inside the last (3 000 broke Python's parser)."""
    opening = [f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n' for n in reversed(range(levels))]
    closing = [f"\r\n--b{n}--\r\n" for n in range(levels)]
    body = "Content-Type: text/plain\r\n\r\nThe vase is still broken.\r\n"
    return (HEAD.format(subject="Deep", mid=mid) + "".join(opening) + body + "".join(closing)).encode()


@pytest.fixture
def mailbox(support):
    return channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={"address": "support@example.test", "smtp_host": "127.0.0.1"},
    )


def ingest(channel, raw: bytes, key: str = "k1") -> InboundEvent:
    event, _ = inbound.record_inbound_event(channel=channel, endpoint="imap", dedupe_key=key, body=raw)
    inbound.process_inbound_event(event_id=event.pk)
    event.refresh_from_db()
    return event


def test_ten_thousand_parts_keep_the_text_and_at_most_the_attachment_cap(client, mailbox, alice, settings):
    with CaptureQueriesContext(connection) as queries:
        event = ingest(mailbox, many_parts(10_000))

    assert event.status == InboundEvent.Status.PROCESSED, event.error
    message = Message.objects.get(channel=mailbox)
    assert message.text == "Please see the photos of the broken vase."
    assert message.attachments.count() == settings.PARLEY_MAIL_MAX_ATTACHMENTS == 50
    inserts = [q for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "inbox_attachment"')]
    assert len(inserts) == 50
    limits = message.metadata["mail_limits"]
    assert limits["parts_not_read"] + limits["attachments_not_kept"] + 50 == 10_000
    assert len(limits["names"]) == 20  # named up to a point, counted in full

    client.force_login(alice)
    page = client.get(f"/c/{message.conversation_id}/").content.decode()
    assert f"{limits['attachments_not_kept']} more attachments were not kept (at most 50 attachments" in page
    assert f"{limits['parts_not_read']} more parts of this mail were not read (Parley reads at most 500" in page
    assert len(page) < 200_000  # was a megabyte: one line per attachment


def test_the_text_is_kept_even_after_the_part_cap(mailbox, settings):
    settings.PARLEY_MAIL_MAX_PARTS = 20

    ingest(mailbox, many_parts(300, text_first=False))

    message = Message.objects.get(channel=mailbox)
    assert message.text == "Please see the photos of the broken vase."
    assert message.metadata["mail_limits"]["parts_not_read"] >= 280
    assert message.attachments.count() < 20


def test_attachments_past_the_total_bytes_are_listed_not_kept(mailbox, settings):
    settings.PARLEY_MAIL_MAX_ATTACHMENTS_BYTES = 1000

    ingest(mailbox, many_parts(3, size=400))

    message = Message.objects.get(channel=mailbox)
    assert sorted(a.filename for a in message.attachments.all()) == ["f0.bin", "f1.bin"]
    assert message.metadata["mail_limits"]["names"] == ["f2.bin (400 bytes)"]
    assert message.metadata["mail_limits"]["attachments_not_kept"] == 1


def test_absurd_nesting_fails_at_once_with_a_reason_and_no_recursion_error(mailbox):
    started = time.monotonic()

    event = ingest(mailbox, nested(3000))

    assert event.status == InboundEvent.Status.FAILED
    assert event.attempts == 1  # refused for good, not retried 8 times
    assert "nests its parts" in event.error
    assert "PARLEY_MAIL_MAX_DEPTH" in event.error
    assert "RecursionError" not in event.error
    assert bytes(event.body) == nested(3000)  # kept raw, for an admin
    assert not Message.objects.exists()
    assert time.monotonic() - started < 10


def test_nesting_past_the_limit_can_be_replayed_once_the_limit_is_raised(mailbox, settings):
    event = ingest(mailbox, nested(60))
    assert event.status == InboundEvent.Status.FAILED

    settings.PARLEY_MAIL_MAX_DEPTH = 100
    inbound.replay_inbound_event(event=event)
    inbound.process_inbound_event(event_id=event.pk)

    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PROCESSED, event.error
    assert Message.objects.get(channel=mailbox).text == "The vase is still broken."


def test_deep_but_legal_nesting_is_read_whole(mailbox):
    ingest(mailbox, nested(45))

    assert Message.objects.get(channel=mailbox).text == "The vase is still broken."


@pytest.mark.parametrize("levels", [3000, 100_000])
def test_the_parser_refuses_absurd_nesting_before_pythons_parser_recurses(levels):
    from connectors.email.parsing import MailTooDeep, parse_mail

    with pytest.raises(MailTooDeep, match="51 or more levels"):
        parse_mail(nested(levels))


def test_nesting_through_attached_messages_counts_too():
    from connectors.email.parsing import MailTooDeep, parse_mail

    body = "Content-Type: text/plain\r\n\r\nhello\r\n"
    for n in range(200):
        body = f"Content-Type: message/rfc822\r\n\r\nSubject: forward {n}\r\nMessage-ID: <f{n}@x.test>\r\n{body}"
    with pytest.raises(MailTooDeep):
        parse_mail((HEAD.format(subject="Fwd", mid="fwd") + body).encode())


# -- a message too large to fetch from the IMAP server -----------------------------------------


@pytest.fixture
def imap_channel(dovecot, support):  # noqa: F811
    address = dovecot.new_mailbox()
    return channels.create_channel(
        kind="email",
        name="Mailbox",
        team=support,
        channel_settings={**dovecot.channel_settings(address), "smtp_host": "127.0.0.1"},
    )


def big_mail(n: int, attachment_bytes: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@customer.test>"
    message["To"] = "support@example.test"
    message["Subject"] = f"Scans {n}"
    message["Message-ID"] = f"<scans-{n}-{time.time_ns()}@customer.test>"
    message.set_content("The scans of the delivery note are attached.")
    message.add_attachment(b"\x00" * attachment_bytes, maintype="application", subtype="pdf", filename="scan.pdf")
    return message


@pytest.mark.django_db
def test_an_oversized_mail_is_stored_as_its_headers_and_text_with_a_note_never_fetched_whole(
    dovecot,  # noqa: F811
    imap_channel,
    client,
    alice,
    settings,
    caplog,
):
    settings.PARLEY_MAIL_MAX_BYTES = 50_000
    settings.PARLEY_MAIL_PREVIEW_BYTES = 4096
    address = imap_channel.settings["address"]
    dovecot.deliver(big_mail(1, 200_000), to=address)
    dovecot.deliver(big_mail(2, 1000), to=address)  # a normal one beside it

    with caplog.at_level(logging.WARNING, logger="connectors.email.imap"):
        report = Mailbox(imap_channel).poll()

    assert report.stored == 2
    big, small = InboundEvent.objects.filter(channel=imap_channel).order_by("pk")
    assert int(big.headers["truncated_from"]) > 200_000
    assert len(bytes(big.body)) < 6000  # headers and the first 4 KB of the body, not 270 KB
    assert "truncated_from" not in small.headers
    assert "over PARLEY_MAIL_MAX_BYTES" in caplog.text
    for event in (big, small):
        inbound.process_inbound_event(event_id=event.pk)
    message = Message.objects.get(channel=imap_channel, metadata__subject="Scans 1")
    assert message.text == "The scans of the delivery note are attached."
    assert not message.attachments.exists()
    assert message.metadata["mail_limits"]["truncated_from"] == int(big.headers["truncated_from"])
    assert Message.objects.get(channel=imap_channel, metadata__subject="Scans 2").attachments.count() == 1
    assert dovecot.status(address)["MESSAGES"] == 2  # nothing left the mailbox

    client.force_login(alice)
    page = client.get(f"/c/{message.conversation_id}/").content.decode()
    assert "only its headers and the start of its text are shown here" in page
    assert not Attachment.objects.filter(message=message).exists()
