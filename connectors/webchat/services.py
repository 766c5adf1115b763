"""The widget's writers: a visitor's message, a visitor's identity, what a visitor has seen.

Each goes through the core's services (``receive_message``, ``apply_status_update``) and the
customers' (``resolve_customer``, ``link_identity``) and the inbox's (``merge_customers``); nothing here writes a
core row itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from connectors.webchat import protocol, ratelimit
from connectors.webchat.protocol import ProtocolError
from customers.models import Customer, Identity
from customers.services import (
    InvalidAddress,
    MergeError,
    link_identity,
    normalise_address,
    resolve_customer,
    update_customer,
)
from inbox.models import Channel, Message
from inbox.services.customers import merge_customers
from inbox.services.inbound import receive_message
from inbox.services.outbound import UnknownMessage, apply_status_update
from inbox.transport import InboundAttachment, InboundMessage, StatusUpdate, connector_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    message: Message
    duplicate: bool


def receive_visitor_message(
    *,
    channel: Channel,
    visitor: str,
    client_msg_id: str,
    text: str,
    page_url: str = "",
    locale: str = "",
    attachments: tuple[InboundAttachment, ...] = (),
    choice: Any = "",
) -> Received:
    """Store a visitor's message once per client id; a resend returns the stored one.

    Raises :class:`ProtocolError` for an empty or too long message. The text is stored as text:
    operators never see a visitor's HTML as HTML.
    """
    client_msg_id = protocol.client_id(client_msg_id)
    if not isinstance(text, str):
        raise ProtocolError("bad_text", "text must be a string.")
    text = text.strip()
    limit = protocol.limits().text_chars
    if len(text) > limit:
        raise ProtocolError("too_long", f"A message may have at most {limit} characters.", status=413)
    if not text and not attachments:
        raise ProtocolError("empty", "The message is empty.")
    key = protocol.provider_id(visitor, client_msg_id)
    # No lookup first: the core stores a provider id once and hands back the stored message for a
    # resend (a rare case, costlier there); every new message saves a query. A message stored
    # before this call began is a resend.
    started = timezone.now()
    metadata: dict[str, Any] = {"webchat": {"locale": protocol.language(locale)}}
    if page_url and isinstance(page_url, str):
        metadata["webchat"]["page_url"] = page_url[:500]
    if choice:
        # A tapped button (the choices contract); anything else than a short id is refused.
        if not isinstance(choice, str) or not protocol.CHOICE_ID.match(choice):
            raise ProtocolError("bad_choice", "choice must be the id of a button the message offered.")
        metadata["choice"] = choice
    message = receive_message(
        channel=channel,
        inbound=InboundMessage(provider_id=key, address=visitor, text=text, attachments=attachments, metadata=metadata),
    )
    if message.created_at < started:
        return Received(message, duplicate=True)
    if locale and not message.customer.language:
        # The browser's language, so that operators and the bot know it before the first word.
        update_customer(customer=message.customer, language=metadata["webchat"]["locale"])
    return Received(message, duplicate=False)


EARLY_ACK_SECONDS = 3600


def _early_ack_key(message_id: int) -> str:
    # In Redis through the widget's own client, not Django's cache: that one is context-local under
    # ASGI, and a socket that touched it would keep a Redis client of its own for its whole life.
    return f"{ratelimit.key_prefix()}:early-ack:{message_id}"


def mark_seen(*, channel: Channel, visitor: str, ids: frozenset[int], status: str) -> int:
    """The visitor's widget showed (``delivered``) or they looked at (``read``) these messages of ours.

    Only the visitor's own outbound messages move, and only forward. A message the widget showed
    while its send was still being recorded (it is pushed before the worker stores ``sent``) has
    its acknowledgement kept for a while and applied by :func:`apply_early_ack`. Returns how many
    messages moved.
    """
    if status not in (Message.Status.DELIVERED, Message.Status.READ):
        raise ProtocolError("bad_status", "status must be 'delivered' or 'read'.")
    rows = list(
        Message.objects.filter(channel=channel, address=visitor, direction=Message.Direction.OUTBOUND, pk__in=ids)
        .exclude(status__in=[Message.Status.FAILED, status, Message.Status.READ, *Message.NOT_SENT])
        .values_list("pk", "provider_id")
    )
    moved = 0
    for pk, provider_id in rows:
        if not provider_id:
            ratelimit.client().set(_early_ack_key(pk), status, ex=EARLY_ACK_SECONDS)
            # The send may have been recorded meanwhile, after its hook looked for this.
            provider_id = Message.objects.filter(pk=pk).values_list("provider_id", flat=True).first() or ""
            if not provider_id:
                continue
        moved += _apply(channel, provider_id, status)
    return moved


def apply_early_ack(*, message: Message) -> None:
    """Apply what the widget said about ``message`` before its send was recorded (the connector's ``sent``)."""
    raw = ratelimit.client().get(_early_ack_key(message.pk))
    status = raw.decode() if isinstance(raw, bytes) else raw
    if status and message.channel is not None:
        _apply(message.channel, message.provider_id, str(status))
        ratelimit.client().delete(_early_ack_key(message.pk))


def _apply(channel: Channel, provider_id: str, status: str) -> int:
    try:
        with transaction.atomic():
            return int(
                apply_status_update(channel=channel, update=StatusUpdate(provider_id=provider_id, status=status))
            )
    except UnknownMessage:
        return 0


def _root(customer: Customer) -> Customer:
    seen = set()
    while customer.merged_into_id is not None and customer.pk not in seen:
        seen.add(customer.pk)
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def identify_visitor(
    *,
    channel: Channel,
    visitor: str,
    email: Any = "",
    name: Any = "",
    user_id: Any = "",
    given_hash: Any = "",
) -> bool:
    """What the site (``Parley.identify``) or the visitor (a form) says about who the visitor is.

    With ``user_hash`` = HMAC-SHA256(channel's identity secret, user id or else email) the site
    vouches for it: the visitor is linked to that customer (merged into the one who already has the
    email or user id: one customer across channels). Without a valid hash the email is only a
    suggestion (kept in the customer's attributes, where duplicate suggestions look), never a link.
    Returns whether it was verified.
    """
    email = str(email or "").strip()[:320]
    name = str(name or "").strip()[:200]
    user_id = str(user_id or "").strip()[:200]
    if email:
        try:
            email = normalise_address(Identity.Kind.EMAIL, email)
        except InvalidAddress as exc:
            raise ProtocolError("bad_email", "That is not an email address.") from exc
    if not (email or name or user_id):
        raise ProtocolError("empty", "Nothing to identify with: give an email, a name or a user id.")
    secret = connector_for(channel).setting("identity_secret")
    verified = protocol.hash_matches(secret, user_id or email, given_hash)
    user_value = f"user:{channel.pk}:{user_id}" if user_id else ""
    with transaction.atomic():
        customer, _identity = resolve_customer(kind=Identity.Kind.WEBCHAT, value=visitor)
        customer = _root(customer)
        if verified:
            known = None
            for kind, value in ((Identity.Kind.WEBCHAT, user_value), (Identity.Kind.EMAIL, email)):
                if value and known is None:
                    owner = Identity.objects.filter(kind=kind, value=value).select_related("customer").first()
                    known = _root(owner.customer) if owner is not None else None
            if known is not None and known.pk != customer.pk:
                try:
                    merge_customers(source=customer, target=known, by=None)
                    customer = known
                except MergeError:
                    logger.warning("could not merge visitor %s into customer %s", visitor, known.pk)
            for kind, value in ((Identity.Kind.WEBCHAT, user_value), (Identity.Kind.EMAIL, email)):
                if value:
                    link_identity(customer=customer, kind=kind, value=value, verified=True)
            if name and not customer.name:
                update_customer(customer=customer, name=name)
        else:
            attributes = dict(customer.attributes or {})
            changes: dict[str, Any] = {}
            if email and attributes.get("email") != email:
                attributes["email"] = email
                changes["attributes"] = attributes
            if name and not customer.name:
                changes["name"] = name
            if changes:
                update_customer(customer=customer, **changes)
    return verified
