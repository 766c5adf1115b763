"""The email fallback: an operator's reply the visitor did not see in the widget goes to their email.

A visitor who left an email (the widget's "we'll answer by email" form, its pre-chat form, or the
site's ``Parley.identify``) and does not read an operator's reply in the widget within the
channel's ``email_after_minutes`` — or whose tabs are all closed a minute after it went out — gets
it by email, through the team's email channel and the core's one way out
(:func:`inbox.services.outbound.reply` with the address they gave): one mail per conversation and
sweep, carrying every such reply, in the same conversation (operators see it in the thread), with a
link back to the chat. A reply is emailed once (``metadata["webchat_emailed"]`` on it); what the
visitor reads in time is never emailed. Bot answers are not emailed: they come while the visitor
is there.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from connectors.webchat import presence, protocol
from customers.models import Customer, Identity
from inbox.models import Channel, Conversation, Message
from inbox.services import outbound
from inbox.services.conversations import ReplyRefused, can_see

logger = logging.getLogger(__name__)

LOOKBACK = timedelta(hours=24)  # replies older than this are left alone (a sweeper that was down)
UNSEEN = (Message.Status.SENT, Message.Status.DELIVERED)
CHAT_FRAGMENT = "#parley-chat"  # the widget opens itself on a page with this fragment


def email_after(channel: Channel) -> timedelta:
    """How long an operator's reply may stay unread in the widget before it is emailed."""
    try:
        minutes = int(channel.settings.get("email_after_minutes") or settings.PARLEY_WEBCHAT_EMAIL_AFTER_MINUTES)
    except (TypeError, ValueError):
        minutes = settings.PARLEY_WEBCHAT_EMAIL_AFTER_MINUTES
    return timedelta(minutes=max(0, minutes))


def email_channel_for(channel: Channel) -> Channel | None:
    """The email channel that carries this website chat's late replies: the one its ``email_channel``
    setting names (id or name), else the team's first active email channel. Only the same team's:
    a chat never answers through another team's mailbox."""
    if channel.team_id is None:
        return None
    mailboxes = Channel.objects.filter(kind="email", is_active=True, team_id=channel.team_id).order_by("pk")
    named = str(channel.settings.get("email_channel") or "").strip()
    if named:
        return (mailboxes.filter(pk=int(named)) if named.isdigit() else mailboxes.filter(name=named)).first()
    return mailboxes.first()


def visitor_email(customer: Customer) -> str:
    """Where the visitor asked to be answered: a verified email of theirs, else the one they left."""
    verified = (
        Identity.objects.filter(customer=customer, kind=Identity.Kind.EMAIL)
        .order_by("-created_at")
        .values_list("value", flat=True)
        .first()
    )
    left = (customer.attributes or {}).get("email")
    return str(verified or left or "")


def chat_link(channel: Channel, conversation_id: int) -> str:
    """The page of the site the visitor last wrote from, opening the chat; only the channel's own
    origins (the page URL comes from the visitor's browser: it must not point a mail elsewhere)."""
    pages = (
        Message.objects.filter(conversation_id=conversation_id, channel=channel, direction=Message.Direction.INBOUND)
        .order_by("-pk")
        .values_list("metadata", flat=True)[:20]
    )
    for metadata in pages:
        page = str(((metadata or {}).get("webchat") or {}).get("page_url") or "")
        parts = urlsplit(page)
        origin = f"{parts.scheme}://{parts.netloc}"
        if "@" not in parts.netloc and protocol.origin_allowed(channel, origin):
            return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, "")) + CHAT_FRAGMENT
    origins = protocol.parse_origins(channel.settings.get("allowed_origins", ""))
    return f"{origins[0]}/{CHAT_FRAGMENT}" if origins else ""


def _language(conversation: Conversation, replies: list[Message]) -> str:
    wanted = conversation.customer.language or ""
    if not wanted:
        wanted = str(
            Message.objects.filter(conversation=conversation, direction=Message.Direction.INBOUND)
            .order_by("-pk")
            .values_list("metadata__webchat__locale", flat=True)
            .first()
            or ""
        )
    return protocol.language(wanted)


def compose(*, channel: Channel, conversation: Conversation, replies: list[Message]) -> tuple[str, str]:
    """(subject, text) of the mail, in the visitor's language."""
    site = str(channel.settings.get("title", "")) or channel.name
    link = chat_link(channel, conversation.pk)
    with translation.override(_language(conversation, replies)):
        subject = _("A reply to your chat with %(site)s") % {"site": site}
        parts = [_("You have a reply to your chat with %(site)s:") % {"site": site}, ""]
        for message in replies:
            name = protocol.agent_name(message, protocol.names_style(channel)) or _("Support")
            parts.append(f"{name}:")
            parts.append(message.text)
            for attachment in message.attachments.all():
                parts.append(_("(a file in the chat: %(name)s)") % {"name": attachment.filename})
            parts.append("")
        if link:
            parts.append(_("Continue the chat: %(link)s") % {"link": link})
        parts.append(_("Or simply answer this email."))
    return subject, "\n".join(parts).strip() + "\n"


def email_replies(*, channel: Channel, mailbox: Channel, message_ids: list[int]) -> Message | None:
    """Email these unread replies of one conversation to the visitor; None when there is nothing to do.

    Safe to call twice (two sweepers): the replies are locked and re-read, and a reply emailed or
    read meanwhile is left out.
    """
    with transaction.atomic():
        replies = list(
            Message.objects.select_for_update(of=("self",))
            .filter(pk__in=message_ids, channel=channel, status__in=UNSEEN)
            .exclude(metadata__has_key="webchat_emailed")
            .select_related("author", "conversation__customer")
            .order_by("pk")
        )
        if not replies:
            return None
        conversation = replies[0].conversation
        address = visitor_email(conversation.customer)
        if not address:
            return None
        authors = {m.author_id for m in replies}
        author = replies[-1].author if len(authors) == 1 else None
        if author is not None and not (author.is_active and can_see(author, conversation)):
            author = None
        subject, text = compose(channel=channel, conversation=conversation, replies=replies)
        mail: Message | None = None
        outcome: dict[str, Any]
        try:
            mail = outbound.reply(
                conversation=conversation,
                text=text,
                by=author,
                channel=mailbox,
                address=address,
                metadata={"subject": subject, "webchat_fallback": {"channel": channel.pk, "replies": message_ids}},
            )
            outcome = {"webchat_emailed": mail.pk}
        except ReplyRefused as exc:
            # Not again every minute: the reason stays on the reply, for operators.
            logger.info("website chat replies %s not emailed: %s", message_ids, exc.reason)
            outcome = {"webchat_emailed": None, "webchat_email_refused": exc.reason[:300]}
        for message in replies:
            outbound.update_message(message_id=message.pk, change=lambda metadata: ({**metadata, **outcome}, None))
    return mail


def due_replies(*, now: datetime | None = None) -> dict[tuple[int, int], list[int]]:
    """{(website chat channel id, conversation id): reply ids} that should be emailed now."""
    now = now or timezone.now()
    gone_grace = timedelta(seconds=settings.PARLEY_WEBCHAT_EMAIL_GONE_SECONDS)
    due: dict[tuple[int, int], list[int]] = defaultdict(list)
    for channel in Channel.objects.filter(kind="webchat", is_active=True):
        rows = list(
            Message.objects.filter(
                channel=channel,
                direction=Message.Direction.OUTBOUND,
                kind=Message.Kind.MESSAGE,
                sender=Message.Sender.OPERATOR,
                status__in=UNSEEN,
                created_at__gte=now - LOOKBACK,
                created_at__lte=now - min(gone_grace, email_after(channel)),
            )
            .exclude(metadata__has_key="webchat_emailed")
            .order_by("pk")
            .values_list("pk", "conversation_id", "address", "created_at", "customer_id")
        )
        # Most visitors leave no email: theirs are never due (and cost nothing more each minute).
        reachable = set(
            Customer.objects.filter(pk__in={row[4] for row in rows})
            .filter(Q(identities__kind=Identity.Kind.EMAIL) | Q(attributes__has_key="email"))
            .values_list("pk", flat=True)
        )
        waited = now - email_after(channel)
        here: dict[str, bool] = {}
        for pk, conversation_id, visitor, created_at, customer_id in rows:
            if customer_id not in reachable:
                continue
            if created_at > waited:
                if visitor not in here:
                    here[visitor] = presence.visitor_connected(channel.pk, visitor)
                if here[visitor]:
                    continue  # still has the widget open: give them the full time to read it
            due[(channel.pk, conversation_id)].append(pk)
    return due


def email_unseen_replies(*, now: datetime | None = None) -> list[int]:
    """The sweep (every minute): email what is due; returns the ids of the mails queued."""
    queued = []
    channels: dict[int, tuple[Channel, Channel | None]] = {}
    for (channel_id, conversation_id), ids in due_replies(now=now).items():
        if channel_id not in channels:
            channel = Channel.objects.get(pk=channel_id)
            channels[channel_id] = (channel, email_channel_for(channel))
        channel, mailbox = channels[channel_id]
        if mailbox is None:
            continue
        # One sweep at a time per conversation (a slow one and the next minute's).
        lock = f"webchat:emailing:{conversation_id}"
        if not cache.add(lock, 1, 300):
            continue
        try:
            mail = email_replies(channel=channel, mailbox=mailbox, message_ids=ids)
        except Exception:
            logger.exception("emailing website chat replies %s failed", ids)
            continue
        finally:
            cache.delete(lock)
        if mail is not None:
            queued.append(mail.pk)
    return queued
