"""``/audit/``: the audit log for staff, filtered, with a CSV download of the same entries."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from audit import selectors
from audit.forms import EntryFilterForm
from audit.models import Entry
from audit.services import record
from common.cells import safe_cell

# Kinds offered in the filter (any kind can be typed).
KINDS = [
    "operator",
    "team",
    "role",
    "channel",
    "article",
    "importjob",
    "customer",
    "report",
    "knowledge base",
    "audit log",
]


def _staff(request: HttpRequest) -> None:
    if not (request.user.is_active and request.user.is_staff):
        raise PermissionDenied(_("Only admins may read the audit log."))


def _problem(form: EntryFilterForm) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


@require_GET
@login_required
def index(request: HttpRequest) -> HttpResponse:
    _staff(request)
    form = EntryFilterForm(request.GET)
    context: dict[str, Any] = {"form": form, "kinds": KINDS, "actions": Entry.Action.choices}
    if not form.is_valid():
        return render(request, "audit/index.html", {**context, "problem": _problem(form)}, status=400)
    filters = form.filters()
    entries, next_before = selectors.page(selectors.entries(**filters), before=form.cleaned_data.get("before"))
    query = {name: value for name, value in request.GET.items() if name != "before" and value}
    context |= {
        "entries": entries,
        "querystring": urlencode(query),
        "next_querystring": urlencode({**query, "before": next_before}) if next_before else "",
    }
    return render(request, "audit/index.html", context)


class _Echo:
    """A file-like object that hands back what is written: csv.writer feeding a streaming response."""

    def write(self, value: str) -> str:
        return value


def _rows(entries: Any) -> Iterator[str]:
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield "\ufeff"  # the byte-order mark makes spreadsheet programs read the file as UTF-8
    yield writer.writerow(
        [_("When (UTC)"), _("Action"), _("Operator"), _("Address"), _("Kind"), _("Id"), _("Object"), _("Details")]
    )
    for entry in entries.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                entry.at.astimezone(UTC).isoformat(timespec="seconds"),
                entry.action,
                safe_cell(entry.actor),
                entry.address or "",
                safe_cell(entry.target_type),
                safe_cell(entry.target_id),
                safe_cell(entry.target),
                safe_cell(json.dumps(entry.details, ensure_ascii=False, sort_keys=True)) if entry.details else "",
            ]
        )


@require_GET
@login_required
def export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The entries the page's filters select, every page of them, as CSV (cells a spreadsheet will not run)."""
    _staff(request)
    form = EntryFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(_problem(form), status=400, content_type="text/plain; charset=utf-8")
    filters = form.filters()
    record(
        action=Entry.Action.EXPORTED,
        request=request,
        target_type="audit log",
        details={"query": request.GET.urlencode()[:500]},
    )
    response = StreamingHttpResponse(_rows(selectors.entries(**filters)), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="parley-audit-{stamp}.csv"'
    return response
