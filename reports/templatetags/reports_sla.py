"""The SLA card of the Reports page (``templates/reports/_sla.html``), as a tag so that the card
plugs into the page with one include line and reads what it needs itself."""

from __future__ import annotations

from typing import Any

from django import template

from desk.selectors import sla_summary
from inbox.models import Operator
from reports import selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def sla_report(context: template.Context) -> dict[str, Any] | None:
    """The share of SLA-met conversations by channel and team for the page's period and team (one
    query); None when the page has no period (a refused form) or nobody is signed in."""
    request = context.get("request")
    operator = getattr(request, "user", None)
    days = context.get("days")
    if not isinstance(operator, Operator) or not isinstance(days, int) or "report" not in context:
        return None
    since, until = selectors.period(days)
    summary = sla_summary(operator=operator, since=since, until=until, team_id=context.get("team_id"))
    return summary if summary["teams"] else None
