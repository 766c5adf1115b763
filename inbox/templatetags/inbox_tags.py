"""Template helpers for the operator UI: activity sentences, delivery states, attachments."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import template
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format, number_format
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime
from django.utils.translation import gettext as _

from customers.services import local_timezone
from inbox import extensions
from inbox.files import INLINE_IMAGE_TYPES, base_type
from inbox.models import Conversation, Message

register = template.Library()


def _when(value: Any) -> str:
    moment = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return ""
    return date_format(localtime(moment), "SHORT_DATETIME_FORMAT")


@register.filter
def customer_timezone(customer: Any) -> str:
    """The customer's time zone when known (customers.services.local_timezone), for send later."""
    return local_timezone(customer) if customer is not None else ""


@register.filter
def in_customer_time(message: Message) -> str:
    """When a scheduled reply goes out, in the customer's local time ('' when their zone is unknown)."""
    zone = local_timezone(message.customer) if message.send_at else ""
    if not zone:
        return ""
    try:
        moment = message.send_at.astimezone(ZoneInfo(zone))  # type: ignore[union-attr]  # send_at checked above
    except (ZoneInfoNotFoundError, ValueError):
        return ""
    return f"{date_format(moment, 'SHORT_DATETIME_FORMAT')} ({zone})"


@register.simple_tag
def row_badges(conversation: Conversation) -> str:
    """What the apps above the core add to a row of the inbox list (labels): inbox.extensions."""
    return mark_safe("".join(render(conversation) for render in extensions.ROW_BADGES))  # noqa: S308 - each renders escaped templates


@register.simple_tag
def thread_sections(conversation: Conversation) -> str:
    """What the apps above the core add to a thread's header (labels, macros): inbox.extensions."""
    return mark_safe("".join(render(conversation) for render in extensions.THREAD_SECTIONS))  # noqa: S308 - each renders escaped templates


@register.simple_tag
def activity_sentence(message: Message) -> str:
    """The translated sentence for an activity entry ("Alice assigned this to Bob")."""
    data = message.metadata or {}
    action = data.get("action") or message.text
    actor = str(message.author) if message.author_id and message.author else ""
    values = {
        "actor": actor,
        "to": data.get("to_name", ""),
        "from": data.get("from_name", ""),
        "until": _when(data.get("until")),
        "priority": data.get("label", ""),
        "channel": data.get("channel", ""),
        "reason": data.get("reason", ""),
        "source": data.get("source_name", ""),
        "address": data.get("address", ""),
        "conversation": data.get("conversation", ""),
        "question": str(data.get("question", ""))[:120],
        "article": data.get("title", ""),
        "label": data.get("label_name", ""),
        "macro": data.get("macro_name", ""),
        "rule": data.get("rule_name", ""),
        "step": data.get("step", ""),
        "team": data.get("team_name", ""),
        "target": data.get("target_name", ""),
        "score": data.get("score", ""),
        "comment": str(data.get("comment", ""))[:300],
    }
    by_someone: dict[str, str] = {
        "assigned": _("%(actor)s assigned this to %(to)s"),
        "unassigned": _("%(actor)s unassigned %(from)s"),
        "resolved": _("%(actor)s resolved this conversation"),
        "reopened": _("%(actor)s reopened this conversation"),
        "snoozed": _("%(actor)s snoozed this until %(until)s"),
        "priority": _("%(actor)s set the priority to %(priority)s"),
        "taken_over": _("%(actor)s took over from the bot"),
        "retried": _("%(actor)s retried a failed message"),
        "resent": _("%(actor)s resent a message on %(channel)s"),
        "merged": _("%(actor)s merged %(source)s into this customer"),
        "unmerged": _("%(actor)s undid a merge"),
        "given_back_to_bot": _("%(actor)s gave this conversation back to the bot"),
        "example_added": _("%(actor)s taught the bot: “%(question)s” is an example question of “%(article)s”"),
        "label_added": _("%(actor)s added the label %(label)s"),
        "label_removed": _("%(actor)s removed the label %(label)s"),
        "macro_run": _("%(actor)s ran the macro %(macro)s"),
    }
    by_system: dict[str, str] = {
        "assigned": _("Assigned to %(to)s"),
        "unassigned": _("%(from)s was unassigned"),
        "resolved": _("Conversation resolved"),
        "reopened": _("Conversation reopened"),
        "snoozed": _("Snoozed until %(until)s"),
        "woke": _("The snooze ended; the conversation is open again"),
        "priority": _("Priority set to %(priority)s"),
        "taken_over": _("An operator took over from the bot"),
        "handed_off": _("The bot handed this conversation to the team"),
        "delivery_failed": _("A message could not be delivered: %(reason)s"),
        "retried": _("A failed message was retried"),
        "resent": _("A message was resent on %(channel)s"),
        "opted_out": _("The customer opted out of %(channel)s"),
        "opted_in": _("The customer opted in to %(channel)s again"),
        "merged": _("%(source)s was merged into this customer"),
        "unmerged": _("A merge was undone"),
        "related_message": _(
            "%(from)s (%(address)s) answered this conversation from another address: see conversation #%(conversation)s"
        ),
        "given_back_to_bot": _("The conversation went back to the bot"),
        "label_added": _("Label %(label)s added"),
        "label_removed": _("Label %(label)s removed"),
        "rule_action": _("The rule %(rule)s acted: %(step)s"),
        "rule_failed": _("The rule %(rule)s could not act: %(reason)s"),
        "team_changed": _("Moved to the team %(team)s"),
        "sla_breached": _("SLA target missed: %(target)s"),
        "csat_rated": _("The customer rated this conversation %(score)s/5"),
        "csat_comment": _("The customer commented on their rating: “%(comment)s”"),
        "csat_not_sent": _("The satisfaction survey was not sent: %(reason)s"),
    }
    if action == "assigned" and actor and values["to"] == actor:
        sentence = _("%(actor)s took this conversation")
    elif actor and action in by_someone:
        sentence = by_someone[action]
    elif action in by_system:
        sentence = by_system[action]
    else:
        sentence = _("%(actor)s: %(action)s") if actor else "%(action)s"
        values["action"] = str(action).replace("_", " ")
    text = sentence % values
    if action == "unassigned" and values["reason"]:
        text = _("%(sentence)s (%(reason)s)") % {"sentence": text, "reason": values["reason"]}
    return text


CID_SRC_RE = re.compile(r'(\ssrc=")cid:([^"]*)"', re.IGNORECASE)


def _inline_urls(message: Message) -> dict[str, str]:
    return {
        a.content_id.strip("<>"): reverse("inbox:attachment", args=[a.pk])
        for a in message.attachments.all()
        if a.content_id
    }


def _with_inline_images(html: str, message: Message) -> str:
    if "cid:" not in html.lower():
        return mark_safe(html)  # noqa: S308 - sanitised with nh3 when it was stored
    urls = _inline_urls(message)

    def swap(match: re.Match[str]) -> str:
        url = urls.get(unescape(match.group(2)).strip("<>"))
        return f'{match.group(1)}{escape(url)}"' if url else match.group(0)

    return mark_safe(CID_SRC_RE.sub(swap, html))  # noqa: S308 - only our own escaped URLs were added


@register.filter
def message_html(message: Message) -> str:
    """A message's sanitised HTML with ``cid:`` images pointing at their stored attachment.

    Rewritten when the thread is shown (the stored HTML keeps ``cid:``), to the access-checked
    attachment view; a ``cid:`` that names no stored part is left as it is (a broken image).
    """
    return _with_inline_images(message.html, message)


@register.filter
def quoted_html(message: Message) -> str:
    """The whole original HTML of an email whose quotes were folded away ("show quoted text")."""
    metadata = message.metadata if isinstance(message.metadata, dict) else {}
    return _with_inline_images(str(metadata.get("quoted_html", "")), message)


@register.filter
def listed_attachments(message: Message) -> list[Any]:
    """The attachments to list under a message: all but the inline images its HTML already shows."""
    attachments = list(message.attachments.all())
    if "cid:" not in message.html.lower():
        return attachments
    shown = {unescape(match.group(2)).strip("<>") for match in CID_SRC_RE.finditer(message.html)}
    return [a for a in attachments if not (a.content_id and a.content_id.strip("<>") in shown)]


@register.filter
def is_image(attachment: Any) -> bool:
    """An image the attachment view serves inline (an SVG is a download: it can carry script)."""
    return base_type(str(getattr(attachment, "content_type", ""))) in INLINE_IMAGE_TYPES


@register.filter
def initials(name: Any) -> str:
    """Two letters for an avatar; "#" for a customer named by their phone number."""
    text = str(name).strip()
    if text[:1] in {"+", "("} or text[:1].isdigit():
        return "#"
    words = [w for w in text.split() if w]
    return "".join(w[0] for w in words[:2]).upper() or "?"


@register.filter
def get(mapping: Any, key: Any) -> Any:
    """``{{ counts|get:tab }}``: a dictionary item by a variable key."""
    try:
        return mapping[key]
    except (KeyError, TypeError, IndexError):
        return ""


@register.filter
def ago(moment: Any) -> str:
    """ "just now", "5 minutes ago": how long ago, for times in the inbox."""
    from django.utils import timezone
    from django.utils.timesince import timesince

    if not isinstance(moment, datetime):
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return _("just now")
    return _("%(time)s ago") % {"time": timesince(moment, depth=1)}


@register.filter
def duration(value: Any) -> str:
    """A duration for the Reports page: "45 s", "4 min", "2 h 10 min", "3 d 4 h" (rounded down); "—" for none."""
    if not isinstance(value, timedelta):
        return "—"
    seconds = max(int(value.total_seconds()), 0)
    if seconds < 60:
        return _("%(seconds)s s") % {"seconds": seconds}
    minutes = seconds // 60
    if minutes < 60:
        return _("%(minutes)s min") % {"minutes": minutes}
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        if minutes:
            return _("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": minutes}
        return _("%(hours)s h") % {"hours": hours}
    days, hours = divmod(hours, 24)
    if hours:
        return _("%(days)s d %(hours)s h") % {"days": days, "hours": hours}
    return _("%(days)s d") % {"days": days}


@register.filter
def percent(value: Any) -> str:
    """A share (0..1) as a whole percentage, "42 %"; "—" for none."""
    if not isinstance(value, int | float):
        return "—"
    return _("%(percent)s %%") % {"percent": number_format(round(value * 100), 0)}


@register.simple_tag(takes_context=True)
def other_team(context: template.Context, message: Message) -> bool:
    """``{% other_team message as foreign %}``: the message belongs to a conversation of another team
    than the context's ``conversation`` (the one the thread was opened from, if any). The thread
    marks such a message with its team and offers no action on it."""
    conversation = context.get("conversation")
    if conversation is None or message.conversation_id == getattr(conversation, "pk", None):
        return False
    return bool(message.conversation.team_id != conversation.team_id)
