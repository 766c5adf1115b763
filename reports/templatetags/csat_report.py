"""The satisfaction card of the Reports page, as its own include (``templates/reports/_csat.html``):
it reads the reader, the period and the team from the page's context, so the page needs one line."""

from __future__ import annotations

from typing import Any

from django import template

from desk.selectors import csat_summary
from inbox.models import Operator
from reports import selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def csat_report(context: template.Context) -> dict[str, object] | None:
    request: Any = context.get("request")
    operator = getattr(request, "user", None)
    days = context.get("days")
    if not isinstance(operator, Operator) or not isinstance(days, int) or context.get("problem"):
        return None
    since, until = selectors.period(days)
    return csat_summary(operator=operator, since=since, until=until, team_id=context.get("team_id"))
