"""``manage.py doctor``: each section's findings, every connector's check against its stand-in, exit 1."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from inbox.services import channels
from tests.fakes import meta, telegram, twilio, viber
from tests.fakes.dovecot import dovecot  # noqa: F401 - fixture
from tests.fakes.smtp import smtp_peer  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

PUBLIC = "https://inbox.example.test"


def doctor(*skip: str, timeout: float = 0.5) -> tuple[str, bool]:
    """The command's output, and whether it passed (exit 0)."""
    out = io.StringIO()
    try:
        call_command("doctor", *[f"--skip={name}" for name in skip], f"--timeout={timeout}", stdout=out)
    except CommandError as exc:
        return out.getvalue() + str(exc), False
    return out.getvalue(), True


def lines(output: str, mark: str) -> list[str]:
    return [line.strip()[len(mark) :].strip() for line in output.splitlines() if line.strip().startswith(mark)]


def only_channels() -> tuple[str, bool]:
    return doctor("settings", "database", "redis", "worker")


# -- the sections ------------------------------------------------------------------------------------------


def test_development_settings_are_listed_with_what_to_fix_and_exit_1():
    output, passed = doctor("database", "redis", "worker", "channels")
    assert not passed
    failures = lines(output, "FAIL")
    assert any(line.startswith("security.W009: Your SECRET_KEY") for line in failures)
    assert "PARLEY_PRODUCTION is not set: set PARLEY_PRODUCTION=1 to refuse development defaults" in failures
    assert output.rstrip().endswith("problem(s) to fix.")


def test_the_database_and_redis_answer_and_migrations_are_applied():
    output, passed = doctor("settings", "worker", "channels")
    assert passed, output
    oks = lines(output, "ok")
    assert "every migration is applied" in oks
    assert "Redis answers" in oks


def test_no_worker_answering_is_a_failure_with_the_command_to_run():
    # No worker consumes this test's queue on the embedded default; with PostgreSQL + Redis the
    # session's stack may have one: then the queue check must pass instead.
    output, passed = doctor("settings", "database", "redis", "channels")
    if "worker(s) answered" in output:
        assert passed, output
        assert any(line.startswith("queue ") and line.endswith("has a worker") for line in lines(output, "ok"))
    else:
        assert not passed
        assert "no worker answered within 0.5 s: start `celery -A config worker`" in lines(output, "FAIL")


@pytest.mark.django_db(transaction=True)
def test_a_running_worker_answers_and_consumes_the_default_queue(stack):
    output, passed = doctor("settings", "database", "redis", "channels", timeout=3)
    assert passed, output
    assert "queue 'obs' has a worker" in lines(output, "ok") or any(
        line.startswith("queue ") for line in lines(output, "ok")
    )


# -- channels, asked through their connectors ---------------------------------------------------------------


def test_a_channel_without_a_check_says_so(sms):
    output, passed = only_channels()
    assert passed, output
    assert f"#{sms.pk} 'SMS' (simulator): nothing to ask the provider" in lines(output, "ok")


def test_twilio_credentials_number_and_webhook(support):
    with twilio.running() as fake:
        channel = twilio.twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url)
        inbound_url = f"{twilio.PUBLIC_BASE_URL}/hooks/{channel.key}/inbound/"
        fake.numbers["+15555550100"] = {"sms_url": inbound_url}
        output, passed = only_channels()
        assert passed, output
        label = f"#{channel.pk} 'SMS' (twilio-sms)"
        assert f"{label} credentials: account 'Acme Support' is active" in lines(output, "ok")
        assert f"{label} webhook: incoming messages go to {inbound_url}" in lines(output, "ok")
        assert not any(method == "POST" for method, _path in fake.requests)  # nothing sent

        fake.numbers["+15555550100"] = {"sms_url": "https://old.example.test/sms"}
        output, passed = only_channels()
        assert not passed
        assert (
            f"{label} webhook: +15555550100 sends incoming messages to https://old.example.test/sms; "
            f"set its 'A message comes in' URL to {inbound_url}"
        ) in lines(output, "FAIL")

        fake.auth_token = "another-token-entirely-000000000"
        output, passed = only_channels()
        assert not passed
        assert any(
            line.startswith(f"{label} credentials: Twilio refused the credentials (HTTP 401")
            for line in lines(output, "FAIL")
        )


def test_twilio_number_not_in_the_account(support):
    with twilio.running() as fake:
        channel = twilio.twilio_channel("twilio-sms", team=support, api_base_url=fake.base_url)
        output, passed = only_channels()
        assert not passed
        assert (
            f"#{channel.pk} 'SMS' (twilio-sms) number: +15555550100 is not a phone number of this Twilio account"
            in lines(output, "FAIL")
        )


def test_telegram_token_and_webhook_info(support):
    with telegram.running() as fake:
        values = {"bot_token": telegram.TOKEN, "api_base_url": fake.base_url, "public_base_url": PUBLIC}
        channel = channels.create_channel(kind="telegram", name="Telegram", team=support, channel_settings=values)
        label = f"#{channel.pk} 'Telegram' (telegram)"
        expected = f"{PUBLIC}/hooks/{channel.key}/inbound/"
        output, passed = only_channels()
        assert passed, output
        assert f"{label} credentials: bot @{telegram.BOT_USERNAME}" in lines(output, "ok")
        assert f"{label} webhook: {expected} (0 updates waiting)" in lines(output, "ok")

        fake.webhook = {"url": "https://elsewhere.example.test/hook"}
        output, passed = only_channels()
        assert not passed
        assert (
            f"{label} webhook: Telegram sends updates to https://elsewhere.example.test/hook, not {expected}: "
            "reconnect the channel"
        ) in lines(output, "FAIL")

        fake.token = "999:another-token"
        output, passed = only_channels()
        assert any(
            line.startswith(f"{label} credentials: Telegram refused the bot token") for line in lines(output, "FAIL")
        )


def test_viber_account_info_and_webhook(support):
    with viber.running(verify_webhooks=False) as fake:
        values = {
            "auth_token": viber.AUTH_TOKEN,
            "sender_name": "Acme",
            "api_base_url": fake.base_url,
            "public_base_url": PUBLIC,
        }
        channel = channels.create_channel(kind="viber", name="Viber", team=support, channel_settings=values)
        label = f"#{channel.pk} 'Viber' (viber)"
        output, passed = only_channels()
        assert passed, output
        assert f"{label} credentials: bot 'Acme Support' (acmesupport)" in lines(output, "ok")
        assert f"{label} webhook: {PUBLIC}/hooks/{channel.key}/inbound/" in lines(output, "ok")

        fake.webhook = {}
        output, passed = only_channels()
        assert not passed
        assert any(line.startswith(f"{label} webhook: Viber calls no webhook, not ") for line in lines(output, "FAIL"))


def test_meta_token_reaches_the_phone_number(support):
    with meta.running() as fake:
        channel = meta.meta_channel("whatsapp-cloud", team=support, graph=fake.base_url)
        label = f"#{channel.pk} 'WhatsApp' (whatsapp-cloud)"
        fake.nodes[meta.PHONE_NUMBER_ID] = {"verified_name": "Acme Support", "display_phone_number": "+1 555 0100"}
        output, passed = only_channels()
        assert passed, output
        assert f"{label} credentials: phone_number_id {meta.PHONE_NUMBER_ID} is Acme Support" in lines(output, "ok")

        fake.tokens.clear()
        output, passed = only_channels()
        assert not passed
        assert any(
            line.startswith(f"{label} credentials: Meta refused GET /{meta.PHONE_NUMBER_ID}")
            for line in lines(output, "FAIL")
        )


def test_email_logs_in_to_imap_and_smtp_without_sending(dovecot, smtp_peer, support):  # noqa: F811
    address = dovecot.new_mailbox()
    values = {
        **dovecot.channel_settings(address),
        "smtp_host": "127.0.0.1",
        "smtp_port": str(smtp_peer.port),
        "smtp_tls": "none",
    }
    channel = channels.create_channel(kind="email", name="Mail", team=support, channel_settings=values)
    label = f"#{channel.pk} 'Mail' (email)"
    output, passed = only_channels()
    assert passed, output
    assert f"{label} IMAP: 127.0.0.1:{dovecot.imap_port} took the login" in lines(output, "ok")
    assert f"{label} SMTP: 127.0.0.1:{smtp_peer.port} answered EHLO (none)" in lines(output, "ok")
    assert smtp_peer.messages == []

    channel.settings = {**values, "imap_password": "wrong"}
    channel.save(update_fields=["settings"])
    output, passed = only_channels()
    assert not passed
    assert any(
        line.startswith(f"{label} IMAP: 127.0.0.1:{dovecot.imap_port} refused us") for line in lines(output, "FAIL")
    )
