"""The awkward-mail corpus through the real inbound path: stored raw event → connector parse → thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.email.parsing import UnreadableMail, decode_bytes, parse_mail, safe_filename
from inbox.models import Conversation, InboundEvent, Message
from inbox.services import channels, conversations, inbound, outbound

CORPUS = Path(__file__).parent / "fixtures" / "email"


def raw(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


@pytest.fixture
def mailbox(support):
    return channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={"address": "support@example.test", "smtp_host": "127.0.0.1"},
    )


def ingest(channel, data: bytes, key: str = "") -> InboundEvent:
    event, _ = inbound.record_inbound_event(
        channel=channel,
        endpoint="imap",
        dedupe_key=key or f"test:{hash(data)}",
        body=data,
        content_type="message/rfc822",
    )
    inbound.process_inbound_event(event_id=event.pk)
    event.refresh_from_db()
    return event


def only_message(channel) -> Message:
    return Message.objects.get(channel=channel, direction="in")


def test_every_corpus_message_is_read_or_refused_with_a_reason():
    unreadable = {"not_mail.bin"}
    for path in sorted(CORPUS.iterdir()):
        if path.name in unreadable:
            with pytest.raises(UnreadableMail):
                parse_mail(path.read_bytes())
            continue
        mail = parse_mail(path.read_bytes())
        assert mail.full_text or mail.attachments, path.name


def test_a_gmail_reply_shows_the_new_words_and_keeps_the_quote_for_show_quoted(db, mailbox):
    ingest(mailbox, raw("gmail_reply.eml"))

    message = only_message(mailbox)
    assert message.text == "Thanks, the replacement works!\n\nAlice"
    assert "we shipped a replacement today" in message.metadata["quoted_text"]
    assert "gmail_quote" not in message.html
    assert "replacement works" in message.html
    assert "tracker.example.test" not in message.html  # remote tracking pixel dropped
    assert message.provider_id == "CAF=reply-2@mail.customer.test"
    assert message.address == "alice@customer.test"
    assert message.customer.name == "Alice Müller"
    assert message.metadata["subject"] == "Re: [#1001] Order arrived broken"


def test_outlook_latin1_that_is_really_windows_1252_keeps_euro_and_quotes(db, mailbox):
    ingest(mailbox, raw("outlook_reply_latin1.eml"))

    message = only_message(mailbox)
    assert message.text == "Guten Tag, die Rechnung über 100 € ist falsch “doppelt” gebucht."
    assert message.metadata["subject"] == "Rechnung über 100 €"
    assert "Hier ist Ihre Rechnung" in message.metadata["quoted_text"]
    assert "<script" not in message.html
    assert "alert" not in message.html
    [pdf] = message.attachments.all()
    assert (pdf.filename, pdf.content_type) == ("Rechnung 1001.pdf", "application/pdf")
    assert pdf.file.read().startswith(b"%PDF")


def test_an_apple_inline_image_is_stored_inline_with_its_content_id(db, mailbox):
    ingest(mailbox, raw("apple_inline_image.eml"))

    message = only_message(mailbox)
    [image] = message.attachments.all()
    assert image.inline is True
    assert image.content_id == "F00D-CAFE-0001@customer.test"
    assert image.file.read().startswith(b"\x89PNG")
    assert 'src="cid:F00D-CAFE-0001@customer.test"' in message.html


def test_winmail_dat_is_unpacked_into_its_files_and_body(db, mailbox):
    ingest(mailbox, raw("outlook_tnef_winmail.eml"))

    message = only_message(mailbox)
    assert message.text == "Please see the attached invoice."
    assert [(a.filename, a.file.read()) for a in message.attachments.all()] == [
        ("invoice.txt", b"Invoice 1001: 42 EUR\n")
    ]


def test_a_forwarded_message_is_attached_as_eml_and_a_bare_forward_shows_its_text(db, mailbox):
    ingest(mailbox, raw("forward_rfc822.eml"))
    ingest(mailbox, raw("forward_only_rfc822.eml"))

    first, second = Message.objects.filter(channel=mailbox).order_by("pk")
    assert first.text == "The confirmation says 2 items but I got 1."
    assert [a.filename for a in first.attachments.all()] == ["Your order confirmation.eml"]
    assert "Parcel 42 was left with a neighbour." in second.text
    assert first.conversation_id == second.conversation_id  # one customer, one thread


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unknown_charset.eml", "Können Sie mir helfen? € 20"),
        ("no_charset_8bit.eml", "Viele Grüße aus Köln, das kostet 20 €."),
        ("broken_boundary.eml", "My order never arrived, please check."),
        ("smime_signed.eml", "Is my warranty still valid?"),
    ],
)
def test_bad_charsets_and_broken_mime_still_give_the_text(db, mailbox, name, expected):
    ingest(mailbox, raw(name))

    message = only_message(mailbox)
    assert message.text == expected
    assert not message.attachments.exists()  # the S/MIME signature is not a file anyone wants


def test_attachment_names_lose_paths_and_keep_unicode(db, mailbox):
    ingest(mailbox, raw("awkward_filenames.eml"))

    names = [a.filename for a in only_message(mailbox).attachments.order_by("pk")]
    assert names == ["passwd", "Счёт №1.xlsx", "empty.txt"]
    assert safe_filename("..\\..\\boot.ini") == "boot.ini"
    assert safe_filename("\x00\x07") == "attachment"


def test_an_out_of_office_reply_is_recorded_as_automatic(db, mailbox):
    ingest(mailbox, raw("auto_reply_oof.eml"))

    message = only_message(mailbox)
    assert message.metadata["auto_reply"] is True
    assert message.metadata["auto_reason"] == "Auto-Submitted: auto-replied"
    assert message.conversation.waiting_since is None  # nobody owes an answer to a machine


def test_mailing_list_mail_is_automatic(db, mailbox):
    ingest(mailbox, raw("mailing_list.eml"))

    assert only_message(mailbox).metadata["auto_reply"] is True


def test_mail_from_our_own_address_is_automatic(db, mailbox):
    ingest(mailbox, b"From: support@example.test\nTo: x@customer.test\nSubject: loop\n\nhello\n")

    assert only_message(mailbox).metadata["auto_reply"] is True


def test_a_bounce_marks_our_message_failed_with_the_reason(db, mailbox, alice):
    ingest(mailbox, b"From: nobody@customer.test\nTo: support@example.test\nMessage-ID: <n1@customer.test>\n\nhi\n")
    conversation = Conversation.objects.get()
    sent = outbound.reply(conversation=conversation, text="Your order shipped", by=alice)
    Message.objects.filter(pk=sent.pk).update(status="sent", provider_id="ORIGINAL-MESSAGE-ID@example.test")

    event = ingest(mailbox, raw("dsn_bounce.eml"))

    sent.refresh_from_db()
    assert event.status == "processed"
    assert sent.status == "failed"
    assert "550 5.1.1" in sent.status_reason
    assert "nobody@customer.test" in sent.status_reason
    assert Message.objects.filter(direction="in").count() == 1  # the bounce is not a customer message


def test_a_bounce_to_our_verp_address_finds_the_message_without_the_original_headers(db, mailbox, alice):
    ingest(mailbox, b"From: nobody@customer.test\nTo: support@example.test\n\nhi\n")
    sent = outbound.reply(conversation=Conversation.objects.get(), text="Hello", by=alice)
    Message.objects.filter(pk=sent.pk).update(status="sent", provider_id=f"{sent.public_id.hex}@example.test")
    dsn = raw("dsn_bounce.eml").replace(b"0123456789abcdef0123456789abcdef", sent.public_id.hex.encode())
    dsn = dsn.replace(b"Message-ID: <ORIGINAL-MESSAGE-ID@example.test>", b"")

    ingest(mailbox, dsn)

    sent.refresh_from_db()
    assert sent.status == "failed"


def test_a_bounce_for_a_message_we_never_sent_is_kept_failed_for_an_admin(db, mailbox):
    event = ingest(mailbox, raw("dsn_bounce.eml"))

    assert event.status == "failed"
    assert "did not send" in event.error
    assert not Message.objects.exists()


def test_bytes_that_are_not_mail_fail_the_event_with_a_reason_and_keep_it_raw(db, mailbox):
    event = ingest(mailbox, raw("not_mail.bin"))

    assert event.status == "failed"
    assert "cannot be read" in event.error
    assert bytes(event.body) == raw("not_mail.bin")


def test_a_body_without_headers_needs_the_envelope_sender_the_server_adds(db, mailbox):
    bare = ingest(mailbox, raw("no_headers.eml"), key="bare")
    delivered = ingest(mailbox, b"Return-Path: <kim@customer.test>\n" + raw("no_headers.eml"), key="delivered")

    assert bare.status == "failed"
    assert "no sender" in bare.error
    assert delivered.status == "processed"
    assert only_message(mailbox).text == "Where is my parcel? It has been two weeks."
    assert only_message(mailbox).address == "kim@customer.test"


def test_a_reply_to_our_plus_address_joins_that_conversation_even_after_it_was_resolved(db, mailbox):
    ingest(mailbox, b"From: lea@customer.test\nTo: support@example.test\nMessage-ID: <a@c>\n\nfirst\n")
    conversation = Conversation.objects.get()
    conversations.resolve_conversation(conversation=conversation, by=None)
    Conversation.objects.filter(pk=conversation.pk).update(resolved_at="2020-01-01T00:00:00Z")

    ingest(
        mailbox,
        f"From: lea@customer.test\nTo: support+c{conversation.pk}@example.test\nMessage-ID: <b@c>\n\nagain\n".encode(),
    )

    assert Conversation.objects.count() == 1
    assert Message.objects.filter(conversation=conversation, direction="in").count() == 2


def test_decoding_falls_back_without_ever_failing():
    assert decode_bytes("Grüße".encode(), "utf-8") == "Grüße"
    assert decode_bytes("Grüße".encode("cp1252"), "x-bogus") == "Grüße"
    assert decode_bytes(b"\x93quoted\x94", "iso-8859-1") == "“quoted”"
    assert decode_bytes(bytes(range(256)), None)  # never raises


def test_a_delayed_delivery_report_is_kept_raw_and_opens_no_conversation(db, mailbox):
    delayed = (
        raw("dsn_bounce.eml").replace(b"Action: failed", b"Action: delayed").replace(b"Status: 5.1.1", b"Status: 4.4.1")
    )

    event = ingest(mailbox, delayed)

    assert event.status == "processed"
    assert not Conversation.objects.exists()
