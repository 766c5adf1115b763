"""Template helpers for the operator UI: activity sentences, delivery states, attachments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext as _

from inbox.models import Message

register = template.Library()


def _when(value: Any) -> str:
    moment = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return ""
    return date_format(localtime(moment), "SHORT_DATETIME_FORMAT")


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
        "question": str(data.get("question", ""))[:120],
        "article": data.get("title", ""),
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
        "given_back_to_bot": _("The conversation went back to the bot"),
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


@register.filter
def is_image(attachment: Any) -> bool:
    return str(getattr(attachment, "content_type", "")).startswith("image/")


@register.filter
def initials(name: Any) -> str:
    words = [w for w in str(name).split() if w]
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
