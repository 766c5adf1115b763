"""The Reports page (``/reports/``): a table per channel, and its CSV download."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import get_language_bidi
from django.views.decorators.http import require_GET

from audit.services import record
from desk.selectors import label_counts
from inbox.models import Operator, Team
from reports import charts, selectors
from reports.forms import ReportForm


@require_GET
@login_required
def index(request: HttpRequest) -> HttpResponse:
    """Which channels customers use and how the bot and the team serve them; ``format=csv`` downloads the table."""
    operator = request.user
    assert isinstance(operator, Operator)  # noqa: S101 - login_required ran first
    teams = list(Team.objects.all() if operator.is_staff else operator.teams.all())
    form = ReportForm(request.GET, teams=teams)
    # Operators of one team get neither a team filter nor a team column.
    context: dict[str, Any] = {"form": form, "teams": teams, "show_team": operator.is_staff or len(teams) > 1}
    if not form.is_valid():
        problem = " ".join(str(error) for errors in form.errors.values() for error in errors)
        context |= {"days": selectors.DEFAULT_PERIOD, "problem": problem}
        return render(request, "reports/index.html", context, status=400)
    days, team_id = form.cleaned_data["days"], form.cleaned_data["team"]
    since, until = selectors.period(days)
    report = selectors.channel_report(operator=operator, since=since, until=until, team_id=team_id)
    if form.cleaned_data["format"] == "csv":
        # The byte-order mark makes spreadsheet programs read the file as UTF-8.
        response = HttpResponse("\ufeff" + selectors.to_csv(report), content_type="text/csv; charset=utf-8")
        first, last = timezone.localtime(since).date(), timezone.localtime(until).date()
        response["Content-Disposition"] = f'attachment; filename="parley-channels-{first}-{last}.csv"'
        record(
            action="exported",
            request=request,
            target_type="report",
            target_label="channels",
            details={"days": days, "team": team_id},
        )
        return response
    labels = label_counts(operator=operator, since=since, until=until, team_id=team_id)
    context |= {"days": days, "team_id": team_id, "report": report, "labels": labels}
    context["charts"] = charts.charts(report, rtl=get_language_bidi())
    context["querystring"] = urlencode({"days": days, **({"team": team_id} if team_id else {})})
    return render(request, "reports/index.html", context)
