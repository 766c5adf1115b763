"""The customer CSV import (staff): upload, a job with progress that survives a closed tab, row
errors, and resuming an import whose worker stopped."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from customers import imports
from customers.models import CustomerImport
from inbox.models import Operator

PAGE = "customers/import.html"


class CustomerImportForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("CSV file"))


def _staff(request: HttpRequest) -> Operator:
    user = request.user
    if not isinstance(user, Operator) or not user.is_staff:
        raise PermissionDenied(_("Only admins may import customers."))
    return user


def _job(pk: int) -> CustomerImport:
    job = CustomerImport.objects.filter(pk=pk).first()
    if job is None:
        raise Http404(_("No such import."))
    return job


def _render(request: HttpRequest, *, status: int = 200, **context: Any) -> HttpResponse:
    job: CustomerImport | None = context.setdefault("job", None)
    context.setdefault("errors", [])
    context.setdefault("form", CustomerImportForm())
    if job is not None:
        done = imports.progress(job)
        context.update(
            done=done,
            percent=100 if job.status == CustomerImport.Status.DONE else (done * 100 // job.total if job.total else 0),
            stalled=imports.stalled(job),
        )
        if job.status == CustomerImport.Status.FAILED:
            context["errors"] = [imports.RowError(e["row"], e["field"], e["message"]) for e in job.errors]
    context["recent"] = CustomerImport.objects.defer("content")[:10]
    template = PAGE + "#result" if getattr(request, "htmx", False) else PAGE
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def import_customers(request: HttpRequest) -> HttpResponse:
    operator = _staff(request)
    if request.method == "GET":
        return _render(request)
    form = CustomerImportForm(request.POST, request.FILES)
    if not form.is_valid():
        errors = [imports.RowError(0, "", str(e)) for errs in form.errors.values() for e in errs]
        return _render(request, form=form, errors=errors, status=400)
    upload = form.cleaned_data["file"]
    try:
        job = imports.start_import(data=upload.read(), filename=upload.name or "", by=operator)
    except imports.ImportInvalid as invalid:
        return _render(request, errors=invalid.errors, filename=upload.name, status=400)
    if not getattr(request, "htmx", False):
        return redirect(reverse("customers:import_status", args=[job.pk]))
    status = 400 if job.status == CustomerImport.Status.FAILED else 200 if job.finished else 202
    return _render(request, job=job, filename=job.filename, status=status)


@require_GET
@login_required
def import_status(request: HttpRequest, pk: int) -> HttpResponse:
    _staff(request)
    job = _job(pk)
    return _render(request, job=job, filename=job.filename)


@require_POST
@login_required
def resume_import(request: HttpRequest, pk: int) -> HttpResponse:
    operator = _staff(request)
    job = _job(pk)
    if not imports.resume_import(job=job, by=operator):
        job.refresh_from_db()
        return _render(request, job=job, filename=job.filename, status=409)
    job.refresh_from_db()
    if not getattr(request, "htmx", False):
        return redirect(reverse("customers:import_status", args=[job.pk]))
    return _render(request, job=job, filename=job.filename, status=202)
