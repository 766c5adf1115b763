"""Search every conversation's messages (the page behind the search box)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from inbox.forms import MessageSearchForm
from inbox.selectors import search
from inbox.views import base


@require_GET
@login_required
def search_messages(request: HttpRequest) -> HttpResponse:
    """Messages of every conversation the operator may see that contain the words of ``q``."""
    form = MessageSearchForm(request.GET)
    if not form.is_valid():
        problem = " ".join(str(error) for errors in form.errors.values() for error in errors)
        return render(request, "inbox/search.html", {"form": form, "problem": problem}, status=400)
    query, before = form.cleaned_data["q"], form.cleaned_data["before"] or None
    page = search.search_messages(operator=base.operator(request), query=query, before=before) if query else None
    return render(request, "inbox/search.html", {"form": form, "query": query, "page": page})
