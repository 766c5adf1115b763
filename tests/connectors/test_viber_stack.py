"""Viber end to end: set_webhook's check reaches a real Daphne, the stand-in posts signed callbacks
(duplicated, forged), a real worker downloads media and sends replies, and receipts come back over
HTTP out of order."""

from __future__ import annotations

import pytest

from inbox.models import InboundEvent, Message
from inbox.services import channels, outbound
from inbox.transport import ConfigurationError
from tests.conftest import wait_for
from tests.fakes.viber import AUTH_TOKEN, USER_ID, message_event, running

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake():
    with running() as server:
        yield server


def viber_channel(fake, stack, team, **extra):
    values = {
        "auth_token": AUTH_TOKEN,
        "sender_name": "Acme Support",
        "api_base_url": fake.base_url,
        "public_base_url": stack.base_url,
        "http_timeout": "2",
    }
    return channels.create_channel(kind="viber", name="Viber", team=team, channel_settings={**values, **extra})


def test_set_webhook_is_answered_by_our_web_process(fake, stack, support):
    bot = viber_channel(fake, stack, support)
    assert fake.webhook["url"] == f"{stack.base_url}/hooks/{bot.key}/inbound/"
    assert not InboundEvent.objects.exists()  # the check is answered, not stored


def test_a_webhook_nobody_answers_refuses_the_channel(fake, stack, support):
    with pytest.raises(ConfigurationError, match="webhook"):
        viber_channel(fake, stack, support, public_base_url="http://127.0.0.1:9")


def test_duplicated_callbacks_are_one_message_a_forged_one_none_and_media_is_kept(fake, stack, support):
    viber_channel(fake, stack, support)
    url = fake.add_media("box.jpg", b"\xff\xd8box", "image/jpeg")
    picture = message_event({"type": "picture", "media": url, "text": "The box"}, token=5741311803571721087)
    for _ in range(2):
        assert fake.callback(picture).status_code == 200
    assert (
        fake.callback(message_event({"type": "text", "text": "forged"}, token=1), signature="00" * 32).status_code
        == 403
    )
    message = wait_for(lambda: Message.objects.filter(direction="in", attachments__isnull=False).first())
    assert message.attachments.get().file.read() == b"\xff\xd8box"
    assert Message.objects.filter(direction="in").count() == 1


def test_a_reply_is_sent_once_and_out_of_order_receipts_end_in_seen(fake, stack, support, alice):
    bot = viber_channel(fake, stack, support)
    fake.receipts = ["seen", "delivered", "seen"]
    fake.callback(message_event({"type": "text", "text": "Hello"}, token=5741311803571721087))
    message = wait_for(lambda: Message.objects.filter(channel=bot, direction="in").first())
    fake.fail_next("tooManyRequests")
    reply = outbound.reply(conversation=message.conversation, text="Hi Alice", by=alice)
    # tooManyRequests is retried after a minute; move the retry along instead of waiting.
    wait_for(
        lambda: Message.objects.get(pk=reply.pk).attempts == 1 and Message.objects.get(pk=reply.pk).status == "queued",
        timeout=30,
    )
    outbound.deliver_message(message_id=reply.pk)
    wait_for(lambda: len(fake.receipt_results) == 3, timeout=30)
    wait_for(lambda: Message.objects.get(pk=reply.pk).status == "read", timeout=30)
    assert [m["text"] for m in fake.delivered()] == ["Hi Alice"]
    assert fake.delivered()[0]["receiver"] == USER_ID
    assert {code for _kind, code in fake.receipt_results} == {200}
