"""For messengers whose customers can block the business and share their phone number (Telegram,
Viber): what happens after one of their customer's messages is stored.

A customer who blocked (or unsubscribed from) the business writes again: they are reachable again.
A phone number they share is linked to them, merging with that number's customer (SMS, WhatsApp and
voice become one thread), only when the connector vouches that it is the sender's own
(``shared_phone["verified"]``); anyone else's number is only noted on the customer's profile, where
the duplicate suggestions pick it up for an operator. A new conversation on a channel with
``ask_phone_first`` starts with the bot asking for the number.

A connector stores what its customer shared as ``Message.metadata["shared_phone"]`` (``phone``,
``verified``) and calls :func:`connect` once, in its receivers module.
"""

from __future__ import annotations

import logging
from typing import Any

from customers.services import InvalidAddress, normalise_phone, update_customer
from inbox import signals
from inbox.models import Message, OptOut
from inbox.services import conversations, outbound
from inbox.services.customers import link_verified_phone

logger = logging.getLogger(__name__)


def connect(*, kind: str, name: str) -> None:
    """Run :func:`after_customer_message` after each customer message of channels of ``kind``."""

    def received(sender: Any, message_id: int, **kwargs: Any) -> None:
        metadata = kwargs.get("metadata")
        if metadata is not None and kind not in metadata:
            return  # the sender passed the message's metadata: not one of this kind's, no query
        try:
            message = (
                Message.objects.select_related("channel", "customer", "conversation")
                .filter(pk=message_id, channel__kind=kind)
                .first()
            )
            if message is None:
                return
            after_customer_message(
                message, shared_phone=message.metadata.get("shared_phone"), opened=bool(kwargs.get("opened"))
            )
        except Exception:
            # The stored message stands; only the link (or the opt-in) is missing, and it is logged.
            logger.exception("after %s message %s", name, message_id)

    signals.message_received.connect(received, weak=False, dispatch_uid=f"{kind}-after-message")


def after_customer_message(message: Message, *, shared_phone: Any, opened: bool = False) -> None:
    """What a connector whose customers can block it or share their number does after a message."""
    assert message.channel is not None  # noqa: S101 - inbound messages have a channel
    if OptOut.objects.filter(channel=message.channel, customer=message.customer).exists():
        conversations.opt_in(channel=message.channel, customer=message.customer)
    if not isinstance(shared_phone, dict) or not shared_phone.get("phone"):
        if opened and str(message.channel.settings.get("ask_phone_first", "")).lower() in ("1", "true", "yes"):
            ask_for_phone_first(message)
        return
    try:
        phone = normalise_phone(str(shared_phone["phone"]))
    except InvalidAddress:
        logger.info("message %s shared an invalid phone number", message.pk)
        return
    if shared_phone.get("verified"):
        link_verified_phone(customer=message.customer, phone=phone)
    elif not message.customer.attributes.get("phone"):
        update_customer(customer=message.customer, attributes={**message.customer.attributes, "phone": phone})


def ask_for_phone_first(message: Message) -> None:
    """The bot asks a new conversation's customer for their phone number (``ask_phone_first``),
    unless it is known already, so their other channels' history joins the thread."""
    if message.channel is None or message.customer.identities.filter(kind="phone").exists():
        return
    try:
        outbound.ask_for_phone(
            conversation=message.conversation, channel=message.channel, by=None, sender=Message.Sender.BOT
        )
    except conversations.ReplyRefused as refused:
        logger.info("not asking for the phone after message %s: %s", message.pk, refused.reason)
