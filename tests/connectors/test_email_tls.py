"""Email over TLS against real peers on loopback, signed by a throwaway CA.

Dovecot (IMAPS and STARTTLS) and aiosmtpd (STARTTLS and implicit TLS) present certificates from the
session's test CA, which a channel trusts only through ``tls_ca_file``: the same servers without it
are refused, so every test here also shows that verification is on.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from connectors.email.imap import Mailbox
from connectors.email.tasks import poll_mailbox
from inbox.models import Channel, InboundEvent, Message
from inbox.services import channels, inbound, outbound
from inbox.transport import ConfigurationError
from tests.conftest import PASSWORD
from tests.connectors.test_email_smtp import customer_writes
from tests.fakes.dovecot import dovecot, dovecot_tls  # noqa: F401 - fixtures
from tests.fakes.smtp import SMTPPeer
from tests.fakes.tls import LOOPBACK, tls_ca  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def mail(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@customer.test>"
    message["To"] = "support@example.test"
    message["Subject"] = subject
    message["Message-ID"] = f"<tls-{time.time_ns()}@customer.test>"
    message.set_content("Sent over a verified connection.")
    return message


def logged_in(server, address: str) -> list[str]:
    """Dovecot's login lines for one mailbox (each says ``TLS`` when the session was encrypted)."""
    log = (server.root / "dovecot.log").read_text(errors="replace")
    return [line for line in log.splitlines() if f"Login: user=<{address}>" in line]


@pytest.fixture
def mailbox_on(support, tls_ca):  # noqa: F811
    """A channel reading a fresh mailbox of ``server`` with ``imap_tls``; ``trusted`` sets tls_ca_file."""

    def make(server, imap_tls: str, *, trusted: bool = True) -> Channel:
        port = server.imaps_port if imap_tls == "ssl" else server.imap_port
        values = server.channel_settings(server.new_mailbox(), imap_tls=imap_tls, imap_port=str(port))
        if trusted:
            values["tls_ca_file"] = str(tls_ca.file)
        return channels.create_channel(
            kind="email", name="Mailbox", team=support, channel_settings={**values, "smtp_host": "127.0.0.1"}
        )

    return make


def update(channel: Channel, **values: str) -> Channel:
    Channel.objects.filter(pk=channel.pk).update(settings={**channel.settings, **values})
    return Channel.objects.get(pk=channel.pk)


def mailbox_error(channel: Channel) -> str:
    channel.refresh_from_db()
    return str(channel.state["imap"]["INBOX"]["error"])


# -- IMAP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("imap_tls", ["ssl", "starttls"])
def test_mail_is_fetched_over_tls_from_a_server_with_its_own_ca(dovecot_tls, mailbox_on, imap_tls):  # noqa: F811
    channel = mailbox_on(dovecot_tls, imap_tls)
    address = channel.settings["address"]
    dovecot_tls.deliver(mail("Order 1001 broken"), to=address)

    report = Mailbox(channel).poll()
    inbound.process_inbound_event(event_id=InboundEvent.objects.get(channel=channel).pk)

    assert report.stored == 1
    message = Message.objects.get(channel=channel)
    assert (message.metadata["subject"], message.text.strip()) == (
        "Order 1001 broken",
        "Sent over a verified connection.",
    )
    [login] = logged_in(dovecot_tls, address)
    assert re.search(r"\bTLS\b", login), login  # STARTTLS really upgraded before the password went


@pytest.mark.parametrize("imap_tls", ["ssl", "starttls"])
def test_an_unverified_imap_server_is_refused_and_why_is_shown(dovecot_tls, mailbox_on, tls_ca, imap_tls):  # noqa: F811
    channel = mailbox_on(dovecot_tls, imap_tls, trusted=False)
    address = channel.settings["address"]
    dovecot_tls.deliver(mail("Hello"), to=address)

    assert poll_mailbox(channel.pk) == 0  # the scheduled poll goes on; the admin sees why
    assert "CERTIFICATE_VERIFY_FAILED" in mailbox_error(channel)
    assert not InboundEvent.objects.filter(channel=channel).exists()
    assert logged_in(dovecot_tls, address) == []  # the password never went to an unverified server

    update(channel, tls_ca_file=str(tls_ca.file))

    assert poll_mailbox(channel.pk) == 1
    assert mailbox_error(channel) == ""


def test_imap_starttls_never_falls_back_to_plain_text(dovecot, dovecot_tls, mailbox_on):  # noqa: F811
    channel = mailbox_on(dovecot, "starttls")  # this Dovecot runs with ssl = no
    address = channel.settings["address"]
    dovecot.deliver(mail("Hello"), to=address)

    assert poll_mailbox(channel.pk) == 0
    assert "STARTTLS" in mailbox_error(channel)
    assert not InboundEvent.objects.filter(channel=channel).exists()
    assert logged_in(dovecot, address) == []

    # The same settings against a server that offers STARTTLS work: only the server differed.
    dovecot_tls.deliver(mail("Hello"), to=address)
    assert poll_mailbox(update(channel, imap_port=str(dovecot_tls.imap_port)).pk) == 1


# -- SMTP ------------------------------------------------------------------------------------


@pytest.fixture
def smtp_peers(tls_ca) -> Iterator:  # noqa: F811
    """Start SMTP peers: ``smtp_peers(tls, *hosts)`` with a certificate for ``hosts`` (default loopback)."""
    started: list[SMTPPeer] = []

    def start(tls: str, *hosts: str) -> SMTPPeer:
        peer = SMTPPeer(tls=tls, cert=tls_ca.issue(*(hosts or LOOPBACK)) if tls != "none" else None)
        peer.controller.start()
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.controller.stop()


@pytest.fixture
def outbox(support, tls_ca):  # noqa: F811
    """An email channel sending through ``peer``; ``trusted`` sets tls_ca_file."""

    def make(peer: SMTPPeer, *, trusted: bool = True, **values: str) -> Channel:
        settings = {"address": "support@example.test", **peer.settings(), **values}
        if trusted:
            settings["tls_ca_file"] = str(tls_ca.file)
        return channels.create_channel(kind="email", name="Acme Support", team=support, channel_settings=settings)

    return make


def answer(channel: Channel, alice, text: str = "A new one ships today.") -> Message:
    inbound = customer_writes(channel)
    reply = outbound.reply(conversation=inbound.conversation, text=text, by=alice)
    outbound.deliver_message(message_id=reply.pk)
    reply.refresh_from_db()
    return reply


@pytest.mark.parametrize("smtp_tls", ["starttls", "ssl"])
def test_a_reply_goes_out_over_tls_to_a_server_with_its_own_ca(smtp_peers, outbox, alice, smtp_tls):
    peer = smtp_peers(smtp_tls)

    reply = answer(outbox(peer), alice)

    assert (reply.status, reply.status_reason) == ("sent", "")
    [received] = peer.messages  # the STARTTLS peer takes no mail before the upgrade
    assert received.rcpt_tos == ["alice@customer.test"]
    assert received.message.get_body(("plain",)).get_content().strip() == "A new one ships today."


@pytest.mark.parametrize("smtp_tls", ["starttls", "ssl"])
def test_an_unverified_smtp_server_gets_nothing_and_the_reply_says_why(smtp_peers, outbox, alice, tls_ca, smtp_tls):  # noqa: F811
    peer = smtp_peers(smtp_tls)
    channel = outbox(peer, trusted=False)

    refused = answer(channel, alice, "one")
    update(channel, tls_ca_file=str(tls_ca.file))
    sent = answer(channel, alice, "two")

    assert refused.status == "failed"
    assert "TLS certificate is not valid" in refused.status_reason
    assert "local issuer" in refused.status_reason
    assert sent.status == "sent"
    assert [m.message.get_body(("plain",)).get_content().strip() for m in peer.messages] == ["two"]


def test_a_certificate_from_the_trusted_ca_for_another_host_is_refused(smtp_peers, outbox, alice):
    peer = smtp_peers("ssl", "mail.elsewhere.test")

    reply = answer(outbox(peer), alice)

    assert reply.status == "failed"
    assert "mismatch" in reply.status_reason  # the chain is trusted; the host name still counts
    assert peer.messages == []


def test_smtp_starttls_never_falls_back_to_plain_text(smtp_peers, outbox, alice):
    plain = smtp_peers("none")
    channel = outbox(plain, smtp_tls="starttls")

    refused = answer(channel, alice, "one")
    upgrading = smtp_peers("starttls")
    sent = answer(update(channel, smtp_port=str(upgrading.port)), alice, "two")

    assert refused.status == "failed"
    assert "STARTTLS" in refused.status_reason
    assert plain.messages == []
    assert (sent.status, len(upgrading.messages)) == ("sent", 1)


# -- settings --------------------------------------------------------------------------------


@pytest.fixture
def ca_files(tmp_path):
    (tmp_path / "empty.pem").write_text("")
    (tmp_path / "not-a-cert.pem").write_text("-----BEGIN NOTHING-----\nabc\n-----END NOTHING-----\n")
    (tmp_path / "binary.der").write_bytes(b"\x30\x82\xff\xfe")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("missing.pem", "cannot be read: .*No such file"),
        ("empty.pem", "holds no usable PEM certificate"),
        ("not-a-cert.pem", "holds no usable PEM certificate"),
        ("binary.der", "holds no usable PEM certificate"),
    ],
)
def test_a_ca_file_that_cannot_be_used_is_refused_when_the_channel_is_added(ca_files, name, error):
    values = {"address": "support@example.test", "smtp_host": "127.0.0.1", "tls_ca_file": str(ca_files / name)}

    with pytest.raises(ConfigurationError, match=f"tls_ca_file .*{name}.* {error}"):
        channels.create_channel(kind="email", name="Mailbox", channel_settings=values)
    with pytest.raises(CommandError, match="tls_ca_file"):
        call_command(
            "channel",
            "add",
            "email",
            "--name",
            "Mailbox",
            *[f"--set={k}={v}" for k, v in values.items()],
            stdout=io.StringIO(),
        )
    assert not Channel.objects.exists()


def test_the_admin_refuses_to_save_a_ca_file_that_cannot_be_used(client, admin, outbox, smtp_peers, tls_ca):  # noqa: F811
    channel = outbox(smtp_peers("starttls"))
    client.login(username=admin.username, password=PASSWORD)
    url = f"/admin/inbox/channel/{channel.pk}/change/"
    form = {"kind": "email", "name": channel.name, "team": channel.team_id, "is_active": "on"}

    def save(**values: str):
        return client.post(url, {**form, "settings": json.dumps({**channel.settings, **values})})

    broken = save(tls_ca_file="/nonexistent/ca.pem")
    assert broken.status_code == 200  # the form again with the reason: nothing saved, no 500
    assert "These settings cannot be used: tls_ca_file /nonexistent/ca.pem cannot be read" in broken.content.decode()
    assert Channel.objects.get(pk=channel.pk).settings == channel.settings

    assert save(tls_ca_file=str(tls_ca.file), from_name="Acme").status_code == 302
    assert Channel.objects.get(pk=channel.pk).settings["from_name"] == "Acme"
