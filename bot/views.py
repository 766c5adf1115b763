"""The knowledge-base pages, for admins: articles, their example questions, import/export, try the bot.

Every view starts with :func:`_admin` (403 for operators who are not staff). htmx requests get the
fragment they target (``bot/kb.html#editor`` and friends), others the whole page; a change
answers with an ``kb-changed`` event so the list refreshes itself.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url, trigger_client_event
from django_htmx.middleware import HtmxDetails

from audit.services import record
from bot import kb, selectors, transfer
from bot.forms import ArticleForm, FilterForm, ImportForm, TryForm
from bot.models import Article, ImportJob
from inbox.models import Operator

PAGE = "bot/kb.html"


class AdminRequest(HttpRequest):
    htmx: HtmxDetails
    user: Operator


def _admin(request: HttpRequest) -> Operator:
    """The signed-in admin; operators who are not staff get 403 (login_required ran first)."""
    user = request.user
    if not isinstance(user, Operator) or not user.is_staff:
        raise PermissionDenied(_("Only admins may edit the knowledge base."))
    return user


def _article(pk: int) -> Article:
    try:
        return selectors.article_with_examples(pk)
    except Article.DoesNotExist:
        raise Http404(_("No such article.")) from None


def _filters(request: HttpRequest) -> tuple[FilterForm, selectors.ArticleFilters]:
    form = FilterForm(request.GET)
    return form, form.filters() if form.is_valid() else selectors.ArticleFilters()


def _page_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    form, filters = _filters(request)
    return {
        "filter_form": form,
        "filters": filters,
        "page": selectors.article_page(filters),
        "choices": selectors.filter_choices(),
        "try_form": TryForm(),
        "calibration": selectors.calibration_state(),
        "import_form": ImportForm(),
        "querystring": request.GET.urlencode(),
        **extra,
    }


def _editor(
    request: AdminRequest, form: ArticleForm, article: Article | None, *, status: int = 200, **extra: Any
) -> HttpResponse:
    context = {"form": form, "article": article, **extra}
    if request.htmx:
        return render(request, PAGE + "#editor", context, status=status)
    return render(request, PAGE, _page_context(request, **context), status=status)


def _changed(response: HttpResponse) -> HttpResponse:
    return trigger_client_event(response, "kb-changed")


@require_GET
@login_required
def articles(request: AdminRequest) -> HttpResponse:
    _admin(request)
    if not FilterForm(request.GET).is_valid():
        return render(request, PAGE, _page_context(request, bad_filters=True), status=400)
    if request.htmx.target == "kb-results":
        return render(request, PAGE + "#results", _page_context(request))
    return render(request, PAGE, _page_context(request))


@require_http_methods(["GET", "POST"])
@login_required
def article_new(request: AdminRequest) -> HttpResponse:
    operator = _admin(request)
    if request.method == "GET":
        return _editor(request, ArticleForm(), None)
    form = ArticleForm(request.POST)
    if not form.is_valid():
        return _editor(request, form, None, status=400)
    article = kb.create_article(data=form.article_input(), by=operator)
    url = reverse("bot:article", args=[article.pk])
    if not request.htmx:
        return HttpResponseRedirect(url)
    article = _article(article.pk)
    response = _editor(request, ArticleForm(article=article), article, saved=_("Article created."))
    return _changed(push_url(response, url))


@require_http_methods(["GET", "POST"])
@login_required
def article(request: AdminRequest, pk: int) -> HttpResponse:
    operator = _admin(request)
    current = _article(pk)
    if request.method == "GET":
        return _editor(request, ArticleForm(article=current), current)
    form = ArticleForm(request.POST)
    if not form.is_valid():
        return _editor(request, form, current, status=400)
    kb.update_article(article=current, data=form.article_input(), by=operator)
    if not request.htmx:
        return HttpResponseRedirect(reverse("bot:article", args=[pk]))
    current = _article(pk)
    return _changed(_editor(request, ArticleForm(article=current), current, saved=_("Saved.")))


@require_POST
@login_required
def article_delete(request: AdminRequest, pk: int) -> HttpResponse:
    operator = _admin(request)
    current = _article(pk)
    kb.delete_article(article=current, by=operator)
    if not request.htmx:
        return HttpResponseRedirect(reverse("bot:articles"))
    response = render(request, PAGE + "#editor", {"deleted": current.title})
    return _changed(push_url(response, reverse("bot:articles")))


@require_GET
@login_required
def example_row(request: AdminRequest) -> HttpResponse:
    """One empty example-question row for the editor."""
    _admin(request)
    language = request.GET.get("language", "")[:16]
    return render(request, PAGE + "#example-row", {"example": {"text": "", "language": language}, "focus": True})


@require_POST
@login_required
def try_bot(request: AdminRequest) -> HttpResponse:
    _admin(request)
    form = TryForm(request.POST)
    if not form.is_valid():
        return render(request, PAGE + "#try-result", {"try_form": form}, status=400)
    channel = form.cleaned_data["channel"]
    trial = selectors.try_bot(text=form.cleaned_data["text"], channel_id=channel.pk if channel else None)
    return render(request, PAGE + "#try-result", {"try_form": form, "trial": trial, "channel": channel})


@require_http_methods(["GET", "POST"])
@login_required
def calibrate(request: AdminRequest) -> HttpResponse:
    """POST: recompute the thresholds in the worker; GET: how that is going (polled while it runs)."""
    operator = _admin(request)
    status = 200
    context: dict[str, Any] = {}
    if request.method == "POST":
        started, _since = kb.start_calibration(by=operator)
        status = 202 if started else 409
        context["already_running"] = not started
    context["calibration"] = selectors.calibration_state()
    if not request.htmx:
        return render(request, PAGE, _page_context(request, **context), status=status)
    return render(request, PAGE + "#calibration", context, status=status)


@require_POST
@login_required
def import_file(request: AdminRequest) -> HttpResponse:
    operator = _admin(request)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        errors = [transfer.RowError(0, "", str(e)) for errors in form.errors.values() for e in errors]
        return _import_result(request, errors=errors, status=400)
    upload = form.cleaned_data["file"]
    try:
        job = kb.start_import(data=upload.read(), filename=upload.name or "", by=operator)
    except kb.ImportInvalid as invalid:
        return _import_result(request, errors=invalid.errors, filename=upload.name, status=400)
    if job.status == ImportJob.Status.FAILED:
        return _import_result(request, job=job, status=400)
    return _import_result(request, job=job, status=200 if job.finished else 202)


@require_GET
@login_required
def import_status(request: AdminRequest, pk: int) -> HttpResponse:
    _admin(request)
    job = ImportJob.objects.filter(pk=pk).first()
    if job is None:
        raise Http404(_("No such import."))
    return _import_result(request, job=job)


def _import_result(request: AdminRequest, *, status: int = 200, **context: Any) -> HttpResponse:
    job: ImportJob | None = context.setdefault("job", None)
    context.setdefault("errors", [])
    context.setdefault("filename", job.filename if job is not None else "")
    if job is not None:
        done = kb.progress(job)
        context["done"] = done
        context["percent"] = (
            100 if job.status == ImportJob.Status.DONE else (done * 100 // job.total if job.total else 0)
        )
        if job.status == ImportJob.Status.FAILED:
            context["errors"] = [transfer.RowError(e["row"], e["field"], e["message"]) for e in job.errors]
    if request.htmx:
        response = render(request, PAGE + "#import-result", context, status=status)
    else:
        response = render(request, PAGE, _page_context(request, **context), status=status)
    if job is not None and job.status == ImportJob.Status.DONE:
        response = _changed(response)
    return response


@require_GET
@login_required
def export(request: AdminRequest) -> HttpResponse:
    _admin(request)
    fmt = request.GET.get("format", "json")
    form, filters = _filters(request)
    if fmt not in ("json", "csv") or not form.is_valid():
        return HttpResponse(
            _("Choose format=json or format=csv."), status=400, content_type="text/plain; charset=utf-8"
        )
    records = selectors.export_records(filters)
    if fmt == "csv":
        # The byte-order mark makes spreadsheet programs read the file as UTF-8.
        body, content_type = "\ufeff" + transfer.to_csv(records), "text/csv; charset=utf-8"
    else:
        body, content_type = transfer.to_json(records), "application/json; charset=utf-8"
    response = HttpResponse(body, content_type=content_type)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="knowledge-base-{stamp}.{fmt}"'
    record(
        action="exported",
        request=request,
        target_type="knowledge base",
        details={"query": request.GET.urlencode()[:500]},
    )
    return response
