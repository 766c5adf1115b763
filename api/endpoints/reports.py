"""The Reports page's figures (``/reports/``), from the same selector: the token's teams' channels
and conversations (every team for staff)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema

from api.auth import operator_of
from api.problems import Problem, declared, reject_unknown_query
from api.schemas import ChannelReportOut, DurationsOut, MediumPairOut, ReportRowOut
from common.db import MAX_ID
from reports import selectors

router = Router(tags=["reports"])


class ReportQuery(Schema):
    # An int with an enum (pydantic's Literal[7, 30, 90] would not take the query string's "7").
    days: int = Field(
        30, description="The last 7, 30, 90 or 365 days.", json_schema_extra={"enum": list(selectors.PERIODS)}
    )
    team: int | None = Field(None, ge=1, le=MAX_ID, description="One of the token's teams.")


def _durations(value: selectors.Durations) -> DurationsOut:
    return DurationsOut(
        count=value.count,
        median_seconds=value.median.total_seconds() if value.median is not None else None,
        p90_seconds=value.p90.total_seconds() if value.p90 is not None else None,
    )


def _row(row: selectors.ChannelRow) -> ReportRowOut:
    return ReportRowOut(
        channel_id=row.channel_id,
        name=row.name,
        medium=row.medium,
        team=row.team,
        customers=row.customers,
        customer_share=row.customer_share,
        inbound=row.inbound,
        outbound_people=row.outbound_people,
        outbound_bot=row.outbound_bot,
        started=row.started,
        bot_answers=row.bot_answers,
        bot_questions=row.bot_questions,
        bot_handoffs=row.bot_handoffs,
        handoff_share=row.handoff_share,
        first_response=_durations(row.first_response),
        resolved=row.resolved,
        resolution=_durations(row.resolution),
    )


@router.get("/reports/channels", response={200: ChannelReportOut} | declared(), summary="Channel report")
def channel_report(request: HttpRequest, query: Query[ReportQuery]) -> ChannelReportOut:
    """Which channels customers use and how the bot and the team serve them (docs/features.md)."""
    reject_unknown_query(request, ReportQuery)
    if query.days not in selectors.PERIODS:
        raise Problem(
            422,
            _("Choose a period of 7, 30, 90 or 365 days."),
            errors=[{"field": "query.days", "message": _("7, 30, 90 or 365."), "code": "enum"}],
        )
    operator = operator_of(request)
    if query.team is not None and not operator.is_staff and query.team not in operator.team_ids:
        # Another team is not there for this token, as its conversations are not.
        raise Problem(
            404,
            _("No such team among this token's teams."),
            errors=[{"field": "query.team", "message": _("Not one of this token's teams."), "code": "not_found"}],
        )
    since, until = selectors.period(query.days)
    report = selectors.channel_report(operator=operator, since=since, until=until, team_id=query.team)
    return ChannelReportOut(
        since=report.since,
        until=report.until,
        team_id=report.team_id,
        rows=[_row(r) for r in report.rows],
        total=_row(report.total),
        multichannel=report.multichannel,
        multichannel_share=report.multichannel_share,
        pairs=[MediumPairOut(media=list(p.media), customers=p.customers) for p in report.pairs],
    )
