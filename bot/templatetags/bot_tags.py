"""Template helpers for the bot's side of a thread: why it handed off, how sure it was."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext_lazy as _

register = template.Library()

# BotDecision reasons (bot.services, bot.engine) in words for operators.
REASONS = {
    "confident": _("confident"),
    "picked_from_offer": _("the customer picked it from the bot's question"),
    "close_runner_up": _("two articles were close"),
    "asked_for_person": _("the customer asked for a person"),
    "rule_vip": _("a VIP customer (rule)"),
    "rule_label": _("a label that goes to people (rule)"),
    "rule_keyword": _("a keyword that goes to people (rule)"),
    "rule_not_text": _("not a text message (rule)"),
    "no_text": _("the message has no text"),
    "unhelpful_twice": _("two unhelpful answers in a row"),
    "too_many_turns": _("too many bot turns without a person"),
    "not_confident": _("not confident enough"),
    "not_calibrated": _("the bot is not calibrated yet"),
    "calibration_infeasible": _("the calibration met no target"),
    "empty_knowledge_base": _("the knowledge base is empty"),
    "article_gone": _("the article was removed"),
    "reply_refused": _("its reply could not go out"),
    "error": _("the bot failed (error)"),
    "timeout": _("the bot ran out of time"),
    "bot_unavailable": _("the bot was unavailable"),
    "bot_missed_turn": _("the bot missed its turn"),
    "given_back": _("given back to the bot"),
}


@register.filter
def bot_reason(reason: Any) -> str:
    """A decision's reason in words ("the customer asked for a person")."""
    return str(REASONS.get(str(reason), str(reason).replace("_", " ")))


@register.filter
def percent(value: Any) -> str:
    """0.873 -> "87 %" (empty for a missing value)."""
    try:
        return f"{round(float(value) * 100)} %"
    except (TypeError, ValueError):
        return ""
