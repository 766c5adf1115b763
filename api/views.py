"""The API's pages for people: the browsable docs (vendored Swagger UI) and an operator's own tokens.

The docs page is public like the OpenAPI description it renders (neither holds data); trying a
request needs a token. Its script is a file (``static/api-docs.js``), so the page runs under the
project's Content-Security-Policy without exceptions.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from api import tokens
from api.forms import TokenForm
from api.models import ApiToken
from inbox.models import Operator


@require_GET
def docs(request: HttpRequest) -> HttpResponse:
    return render(request, "api/docs.html", {"openapi_url": reverse("api-v1:openapi-json")})


def _operator(request: HttpRequest) -> Operator:
    user = request.user
    assert isinstance(user, Operator)  # noqa: S101 - login_required ran first
    return user


def _own_tokens(operator: Operator) -> list[ApiToken]:
    return list(ApiToken.objects.filter(operator=operator, team__isnull=True).order_by("-created_at", "-pk"))


@require_http_methods(["GET", "POST"])
@login_required
def token_settings(request: HttpRequest) -> HttpResponse:
    """The operator's own API tokens: make one (its text is shown once, here), see when each was
    last used, revoke one. Integration tokens are made by staff in the admin."""
    operator = _operator(request)
    form = TokenForm(request.POST or None)
    issued = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            issued = tokens.issue_operator_token(name=form.cleaned_data["name"], operator=operator, by=operator)
            form = TokenForm()
            status = 201
        else:
            status = 400
    context = {"form": form, "issued": issued, "tokens": _own_tokens(operator)}
    return render(request, "api/tokens.html", context, status=status)


@require_POST
@login_required
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    operator = _operator(request)
    token = ApiToken.objects.filter(pk=pk, operator=operator, team__isnull=True).first()
    if token is None:
        raise Http404(_("No such token."))
    try:
        tokens.revoke_token(token=token, by=operator)
    except PermissionDenied:  # pragma: no cover - the lookup above already keeps to their own
        raise Http404(_("No such token.")) from None
    messages.success(request, _("The token “%(name)s” is revoked.") % {"name": token.name})
    return redirect("api-tokens")
