"""OAuth 2.0 (XOAUTH2) logins for IMAP and SMTP: a real Dovecot whose ``oauth2`` passdb checks the
bearer token, a real SMTP peer that checks it too, and a local token endpoint in place of Google's."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from imapclient.exceptions import LoginError

from connectors.email.imap import Mailbox
from inbox.models import Channel, InboundEvent, Message
from inbox.services import channels, inbound, outbound
from inbox.transport import ConfigurationError, TransientError
from tests.fakes.dovecot import dovecot_oauth  # noqa: F401 - fixture
from tests.fakes.oauth import oauth, oauth_server  # noqa: F401 - fixtures
from tests.fakes.smtp import smtp_oauth_peer, smtp_peer  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

CUSTOMER_MAIL = (
    b"From: Alice Customer <alice@customer.test>\n"
    b"To: {address}\n"
    b"Subject: Order arrived broken\n"
    b"Message-ID: <first-{n}@customer.test>\n\n"
    b"The box was crushed.\n"
)


@pytest.fixture
def mailbox(dovecot_oauth, oauth, support):  # noqa: F811
    """An email channel on Dovecot that logs in with XOAUTH2 only (no password is set)."""
    address = dovecot_oauth.new_mailbox()
    values = {k: v for k, v in dovecot_oauth.channel_settings(address).items() if k != "imap_password"}
    return channels.create_channel(
        kind="email",
        name="Mailbox",
        team=support,
        channel_settings={**values, **oauth.settings(oauth.grant(address)), "smtp_host": "127.0.0.1"},
    )


@pytest.fixture
def outbox(oauth, smtp_oauth_peer, support):  # noqa: F811
    """An email channel whose SMTP server takes mail only after XOAUTH2."""
    address = "support@example.test"
    return channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={"address": address, **smtp_oauth_peer.settings(), **oauth.settings(oauth.grant(address))},
    )


def address_of(channel: Channel) -> str:
    return channel.settings["address"]


def deliver(dovecot, channel: Channel, n: int = 1) -> None:
    raw = CUSTOMER_MAIL.replace(b"{address}", address_of(channel).encode()).replace(b"{n}", str(n).encode())
    dovecot.deliver(raw, to=address_of(channel))


def poll(channel: Channel):
    return Mailbox(Channel.objects.get(pk=channel.pk)).poll()


def logins(dovecot, channel: Channel) -> list[str]:
    return dovecot.logins(address_of(channel))


def customer_writes(channel: Channel, n: int = 1) -> Message:
    raw = CUSTOMER_MAIL.replace(b"{address}", address_of(channel).encode()).replace(b"{n}", str(n).encode())
    event, _ = inbound.record_inbound_event(
        channel=channel, endpoint="imap", dedupe_key=f"oauth-{n}", body=raw, content_type="message/rfc822"
    )
    inbound.process_inbound_event(event_id=event.pk)
    return Message.objects.filter(channel=channel, direction="in").latest("pk")


def reply(channel: Channel, by, text: str = "A new one ships today.") -> Message:
    message = outbound.reply(conversation=customer_writes(channel).conversation, text=text, by=by)
    outbound.deliver_message(message_id=message.pk)
    message.refresh_from_db()
    return message


# -- IMAP ------------------------------------------------------------------------------------


def test_a_mailbox_is_fetched_over_imap_with_xoauth2_and_the_token_is_fetched_once(dovecot_oauth, oauth, mailbox):  # noqa: F811
    deliver(dovecot_oauth, mailbox, 1)

    first = poll(mailbox)
    deliver(dovecot_oauth, mailbox, 2)
    second = poll(mailbox)

    assert (first.stored, second.stored) == (1, 1)
    assert InboundEvent.objects.filter(channel=mailbox).count() == 2
    assert logins(dovecot_oauth, mailbox) == ["XOAUTH2", "XOAUTH2"]  # Dovecot's oauth2 passdb let us in
    [request] = oauth.token_requests  # and one token served both logins
    assert request == {
        "grant_type": "refresh_token",
        "client_id": oauth.client_id,
        "client_secret": oauth.client_secret,
        "refresh_token": mailbox.settings["oauth_refresh_token"],
        "scope": "https://mail.google.com/",
    }


def test_an_expired_token_is_replaced_before_the_next_login(dovecot_oauth, oauth, mailbox):  # noqa: F811
    oauth.expires_in = 3

    poll(mailbox)
    poll(mailbox)
    time.sleep(3.2)
    poll(mailbox)

    assert len(oauth.token_requests) == 2
    assert logins(dovecot_oauth, mailbox) == ["XOAUTH2"] * 3


def test_a_cached_token_the_imap_server_refuses_is_replaced_once(dovecot_oauth, oauth, mailbox):  # noqa: F811
    poll(mailbox)
    oauth.revoke_access_tokens()  # still in our cache, dead at the provider
    deliver(dovecot_oauth, mailbox)

    report = poll(mailbox)

    assert report.stored == 1
    assert len(oauth.token_requests) == 2
    assert logins(dovecot_oauth, mailbox) == ["XOAUTH2", "XOAUTH2"]  # the refused attempt is no login


def test_a_fresh_token_the_imap_server_refuses_is_a_login_error_without_a_second_retry(dovecot_oauth, oauth, mailbox):  # noqa: F811
    poll(mailbox)
    oauth.revoke_access_tokens()
    # The grant now yields tokens of another user: Dovecot refuses every one of them.
    oauth.grants[mailbox.settings["oauth_refresh_token"]] = "someone-else@example.test"

    with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        poll(mailbox)

    assert len(oauth.token_requests) == 2  # the cached token, then exactly one fresh one
    mailbox.refresh_from_db()
    assert "AUTHENTICATIONFAILED" in mailbox.state["imap"]["INBOX"]["error"]


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        ("invalid_grant", "invalid_grant (Token has been expired or revoked.)"),
        ("invalid_client", "invalid_client (The OAuth client was not found.)"),
    ],
)
def test_a_provider_that_refuses_the_credentials_is_a_configuration_error_naming_its_error(
    oauth,  # noqa: F811
    mailbox,
    failure,
    words,
):
    from connectors.email.tasks import poll_mailbox

    oauth.fail_next(failure, failure)

    with pytest.raises(ConfigurationError, match="refused the channel's OAuth credentials") as refused:
        poll(mailbox)

    assert words in str(refused.value)
    assert poll_mailbox(mailbox.pk) == 0  # the scheduler goes on; the admin sees why
    mailbox.refresh_from_db()
    assert words in mailbox.state["imap"]["INBOX"]["error"]
    assert mailbox.settings["oauth_refresh_token"] not in mailbox.state["imap"]["INBOX"]["error"]


def test_a_new_refresh_token_from_the_provider_is_logged_but_never_written(oauth, mailbox, caplog):  # noqa: F811
    oauth.rotate_refresh_tokens = True
    configured = mailbox.settings["oauth_refresh_token"]

    with caplog.at_level(logging.INFO, logger="connectors.email.oauth"):
        poll(mailbox)
    oauth.revoke_access_tokens()
    poll(mailbox)

    assert "issued a new refresh token" in caplog.text
    rotated = [t for t in oauth.grants if t != configured]
    assert rotated
    assert not any(t in caplog.text for t in rotated)
    assert [r["refresh_token"] for r in oauth.token_requests] == [configured, configured]
    assert Channel.objects.get(pk=mailbox.pk).settings["oauth_refresh_token"] == configured


# -- SMTP ------------------------------------------------------------------------------------


def test_a_reply_is_submitted_over_smtp_with_xoauth2(oauth, outbox, alice, smtp_oauth_peer):  # noqa: F811
    first = reply(outbox, alice, "one")
    second = reply(outbox, alice, "two")

    assert (first.status, second.status) == ("sent", "sent")
    assert [m.message["Message-ID"] for m in smtp_oauth_peer.messages] == [
        f"<{first.provider_id}>",
        f"<{second.provider_id}>",
    ]
    assert smtp_oauth_peer.logins == [("support@example.test", True)] * 2
    assert len(oauth.token_requests) == 1


def test_a_cached_token_the_smtp_server_refuses_is_replaced_once(oauth, outbox, alice, smtp_oauth_peer):  # noqa: F811
    reply(outbox, alice, "one")
    oauth.revoke_access_tokens()

    sent = reply(outbox, alice, "two")

    assert sent.status == "sent"
    assert smtp_oauth_peer.logins == [
        ("support@example.test", True),
        ("support@example.test", False),
        ("support@example.test", True),
    ]
    assert len(oauth.token_requests) == 2


def test_a_fresh_token_the_smtp_server_refuses_fails_the_reply_with_the_servers_words(
    oauth,  # noqa: F811
    outbox,
    alice,
    smtp_oauth_peer,  # noqa: F811
):
    reply(outbox, alice, "one")
    oauth.revoke_access_tokens()
    oauth.grants[outbox.settings["oauth_refresh_token"]] = "someone-else@example.test"

    refused = reply(outbox, alice, "two")

    assert refused.status == "failed"
    assert "refused our login" in refused.status_reason
    assert "535" in refused.status_reason or "not accepted" in refused.status_reason
    assert [accepted for _, accepted in smtp_oauth_peer.logins] == [True, False, False]
    assert len(oauth.token_requests) == 2
    assert len(smtp_oauth_peer.messages) == 1


def test_a_refresh_token_the_provider_refuses_is_named_in_the_replys_reason(oauth, outbox, alice, smtp_oauth_peer):  # noqa: F811
    oauth.fail_next("invalid_grant")

    waiting = reply(outbox, alice)

    assert "invalid_grant (Token has been expired or revoked.)" in waiting.status_reason
    assert waiting.status_reason.startswith("Retrying: The channel's settings need fixing: ")  # no class name
    assert smtp_oauth_peer.messages == []


def test_a_server_that_does_not_offer_xoauth2_fails_the_reply_without_asking_for_a_token(
    oauth,  # noqa: F811
    support,
    alice,
    smtp_peer,  # noqa: F811
):
    address = "support@example.test"
    channel = channels.create_channel(
        kind="email",
        name="Old server",
        team=support,
        channel_settings={"address": address, **smtp_peer.settings(), **oauth.settings(oauth.grant(address))},
    )

    refused = reply(channel, alice)

    assert refused.status == "failed"
    assert "AUTH XOAUTH2 is not offered" in refused.status_reason
    assert oauth.token_requests == []
    assert smtp_peer.messages == []


def test_a_token_endpoint_that_is_down_makes_the_reply_wait_and_go_out_later(oauth, outbox, alice, smtp_oauth_peer):  # noqa: F811
    oauth.fail_next("503")

    waiting = reply(outbox, alice)
    outbound.deliver_message(message_id=waiting.pk)  # the retry
    waiting_reason = waiting.status_reason
    waiting.refresh_from_db()

    assert waiting_reason.startswith("Retrying:")
    assert "answered 503: temporarily_unavailable" in waiting_reason
    assert waiting.status == "sent"
    assert len(smtp_oauth_peer.messages) == 1


def test_an_unreachable_token_endpoint_is_transient(oauth, outbox):  # noqa: F811
    from connectors.email.connector import EmailConnector
    from connectors.email.oauth import access_token

    Channel.objects.filter(pk=outbox.pk).update(
        settings={**outbox.settings, "oauth_token_url": "http://127.0.0.1:1/token"}
    )
    connector = EmailConnector(Channel.objects.get(pk=outbox.pk))

    with pytest.raises(TransientError, match="Could not reach the OAuth token endpoint"):
        access_token(connector)
    oauth.fail_next("503")
    with pytest.raises(TransientError, match="answered 503"):
        access_token(EmailConnector(outbox))


# -- settings --------------------------------------------------------------------------------


def test_xoauth2_settings_are_checked_when_the_channel_is_added(oauth, tmp_path):  # noqa: F811
    base = {"address": "support@example.test", "smtp_host": "smtp.example.test", **oauth.settings("1//refresh")}

    def add(**values):
        settings = {k: v for k, v in {**base, **values}.items() if v is not None}
        return channels.create_channel(kind="email", name="Mailbox", channel_settings=settings)

    with pytest.raises(ConfigurationError, match="auth=xoauth2 needs oauth_refresh_token"):
        add(oauth_refresh_token=None)
    with pytest.raises(ConfigurationError, match="auth=xoauth2 needs oauth_token_url, oauth_client_id"):
        add(oauth_token_url=None, oauth_client_id="")
    with pytest.raises(ConfigurationError, match="auth must be one of password, xoauth2, not 'oauth'"):
        add(auth="oauth")
    with pytest.raises(ConfigurationError, match="oauth_token_url must be the provider's https:// token endpoint"):
        add(oauth_token_url="http://login.example.test/token")
    with pytest.raises(CommandError, match="oauth_refresh_token"):
        call_command(
            "channel",
            "add",
            "email",
            "--name",
            "Mailbox",
            *[f"--set={k}={v}" for k, v in base.items() if k != "oauth_refresh_token"],
            stdout=io.StringIO(),
        )
    assert not Channel.objects.exists()

    secret = tmp_path / "refresh-token"
    secret.write_text("1//refresh\n")
    assert add(oauth_refresh_token=None, oauth_refresh_token_file=str(secret)).pk
    assert add(auth=None, oauth_refresh_token=None).pk  # password login needs none of them


def test_the_oauth_secrets_are_never_printed(oauth):  # noqa: F811
    out = io.StringIO()
    call_command(
        "channel",
        "add",
        "email",
        "--name",
        "Gmail",
        *[
            f"--set={k}={v}"
            for k, v in {"address": "support@example.test", "smtp_host": "h", **oauth.settings("1//r")}.items()
        ],
        stdout=out,
    )

    described = json.loads(out.getvalue())["settings"]
    assert described["oauth_refresh_token"] == described["oauth_client_secret"] == "***"
    assert described["oauth_client_id"] == oauth.client_id
