"""Telegram end to end: the stand-in posts updates (with the secret, duplicated and out of order)
to a real Daphne, a real worker fetches media with getFile and sends replies through the Bot API
stand-in, and polls getUpdates when the channel has no webhook."""

from __future__ import annotations

import pytest

from connectors.telegram import tasks
from inbox.models import InboundEvent, Message
from inbox.services import channels, outbound
from tests.conftest import wait_for
from tests.fakes.telegram import ALICE, TOKEN, photo_update, running, text_update

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake():
    with running() as server:
        yield server


def bot_channel(fake, stack, team, **extra):
    values = {"bot_token": TOKEN, "api_base_url": fake.base_url, "public_base_url": stack.base_url, "http_timeout": "2"}
    return channels.create_channel(kind="telegram", name="Telegram", team=team, channel_settings={**values, **extra})


def test_duplicated_out_of_order_updates_and_a_photo_arrive_once_each_and_forgeries_not_at_all(fake, stack, support):
    bot = bot_channel(fake, stack, support)
    fake.add_file("photo-1", b"\xff\xd8jpeg")
    first = text_update(fake, "Hello")
    second = photo_update(fake, "photo-1", caption="The box")
    for update in (second, first, second, first):
        assert fake.deliver(update).status_code == 200
    assert fake.deliver(text_update(fake, "forged"), secret="guess").status_code == 403
    wait_for(
        lambda: (
            Message.objects.filter(direction="in").count() == 2
            and Message.objects.filter(attachments__isnull=False).exists()
        )
    )
    assert InboundEvent.objects.filter(channel=bot).count() == 2
    photo = Message.objects.get(text="The box")
    assert photo.attachments.get().file.read() == b"\xff\xd8jpeg"
    assert not Message.objects.filter(text="forged").exists()


def test_a_reply_through_the_worker_reaches_telegram_once_despite_a_429(fake, stack, support, alice):
    bot = bot_channel(fake, stack, support)
    fake.deliver(text_update(fake, "Hello"))
    message = wait_for(lambda: Message.objects.filter(channel=bot, direction="in").first())
    fake.fail_next("429")
    reply = outbound.reply(conversation=message.conversation, text="Hi Alice", by=alice)
    wait_for(lambda: Message.objects.get(pk=reply.pk).status == "sent", timeout=30)
    assert [c.params["text"] for c in fake.delivered()] == ["Hi Alice"]
    assert len(fake.sent()) == 2  # the refused one and the one that went


def test_a_polling_bot_is_polled_by_the_worker(fake, stack, support):
    bot = bot_channel(fake, stack, support, mode="polling")
    fake.queue_update(text_update(fake, "Through getUpdates"))
    tasks.poll_bot.delay(bot.pk)
    message = wait_for(lambda: Message.objects.filter(channel=bot, direction="in").first(), timeout=30)
    assert message.text == "Through getUpdates"
    assert message.address == str(ALICE.id)
