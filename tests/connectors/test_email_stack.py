"""The whole email path with real processes: Dovecot → poll task on the worker → thread → SMTP → reply."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from connectors.email.tasks import poll_mailbox
from inbox.models import Conversation, Message
from inbox.services import channels, outbound
from tests.conftest import wait_for
from tests.fakes.dovecot import dovecot  # noqa: F401 - fixture
from tests.fakes.smtp import smtp_peer  # noqa: F401 - fixture

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def customer_mail(to: str, *, message_id: str, text: str, in_reply_to: str = "") -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Alice Customer <alice@customer.test>"
    mail["To"] = to
    mail["Subject"] = "Order 1001 arrived broken" if not in_reply_to else "Re: Order 1001 arrived broken"
    mail["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
        mail["References"] = f"<first@customer.test> <{in_reply_to}>"
    mail.set_content(text)
    return mail


def test_mail_is_fetched_answered_and_the_answer_threads_back(stack, dovecot, smtp_peer, support, alice):  # noqa: F811
    address = dovecot.new_mailbox()
    channel = channels.create_channel(
        kind="email",
        name="Acme Support",
        team=support,
        channel_settings={**dovecot.channel_settings(address), **smtp_peer.settings()},
    )
    dovecot.deliver(customer_mail(address, message_id="first@customer.test", text="The box was crushed."), to=address)

    poll_mailbox.delay(channel.pk)  # what beat does every minute, run by the real worker

    inbound = wait_for(lambda: Message.objects.filter(channel=channel, direction="in").first())
    assert inbound.text == "The box was crushed."
    assert inbound.conversation.subject == "Order 1001 arrived broken"

    reply = outbound.reply(conversation=inbound.conversation, text="A new one ships today.", by=alice)

    wait_for(lambda: Message.objects.get(pk=reply.pk).status == "sent")
    [received] = smtp_peer.wait_for(1)
    reply.refresh_from_db()
    sent = received.message
    assert sent["In-Reply-To"] == "<first@customer.test>"
    assert sent["Message-ID"] == f"<{reply.provider_id}>"
    assert str(sent["Reply-To"]).endswith(f"<{address.split('@')[0]}+c{inbound.conversation_id}@example.test>")

    dovecot.deliver(
        customer_mail(
            sent["Reply-To"].addresses[0].addr_spec,
            message_id="second@customer.test",
            text="Thank you!\n\nOn Monday Acme wrote:\n> A new one ships today.",
            in_reply_to=reply.provider_id,
        ),
        to=address,
    )
    poll_mailbox.delay(channel.pk)

    answer = wait_for(lambda: Message.objects.filter(channel=channel, provider_id="second@customer.test").first())
    assert answer.conversation_id == inbound.conversation_id
    assert answer.text == "Thank you!"
    assert Conversation.objects.count() == 1
