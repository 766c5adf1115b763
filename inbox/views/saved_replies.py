"""Saved replies for operators: the ``/replies/`` page, and the reply box's picker.

Views in the inbox's style (:mod:`inbox.views.base`): one access helper, one form, one service call of
:mod:`inbox.services.replies` (which holds the rule of who may change what), one render. The page is plain
forms (post, redirect, flash); its search and the picker are htmx fragments.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from inbox.forms import SavedReplyForm, SavedReplySearchForm
from inbox.models import Operator, SavedReply
from inbox.selectors import saved_replies
from inbox.services import replies
from inbox.views import base

PAGE = "inbox/saved_replies.html"
FORM_PAGE = "inbox/saved_reply_form.html"
# How many saved replies the reply box's picker lists at once: a search narrows them.
PICKER_SIZE = 20


def _manageable(request: HttpRequest, pk: int) -> SavedReply:
    """The saved reply if the operator may change it: 404 when there is none, 403 when it is not theirs."""
    saved_reply = SavedReply.objects.select_related("team").filter(pk=pk).first()
    if saved_reply is None:
        raise Http404(_("No such saved reply."))
    if not replies.can_manage(base.operator(request), saved_reply.team):
        raise PermissionDenied(_("You may only change the saved replies of your own teams."))
    return saved_reply


def _can_add(operator: Operator) -> bool:
    return operator.is_staff or bool(operator.team_ids)


def _form_page(
    request: HttpRequest, form: SavedReplyForm, saved_reply: SavedReply | None, *, status: int = 200
) -> HttpResponse:
    context: dict[str, Any] = {
        "form": form,
        "saved_reply": saved_reply,
        "placeholders": replies.PLACEHOLDERS,
        # Operators without a team have nothing to add saved replies to; staff add everyone's.
        "can_add": _can_add(base.operator(request)),
    }
    return render(request, FORM_PAGE, context, status=status)


def _saved(request: HttpRequest, saved_reply: SavedReply, message: str) -> HttpResponse:
    messages.success(request, message)
    warning = replies.unknown_placeholders_warning(saved_reply.text)
    if warning:
        messages.warning(request, warning)
    return HttpResponseRedirect(reverse("inbox:saved_replies"))


def _invalid(form: SavedReplyForm, error: ValidationError) -> None:
    """Put the service's validation errors on the form, under their fields."""
    for field, errors in error.message_dict.items():
        for message in errors:
            form.add_error(field if field in form.fields else None, message)


# -- the page -------------------------------------------------------------------------------------


@require_GET
@login_required
def saved_reply_list(request: HttpRequest) -> HttpResponse:
    operator = base.operator(request)
    form = SavedReplySearchForm(request.GET)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    found = saved_replies.saved_replies(operator=operator, query=query)
    context = {
        "search": form,
        "query": query,
        "saved_replies": [(reply, replies.can_manage(operator, reply.team)) for reply in found],
        "can_add": _can_add(operator),
        "placeholders": replies.PLACEHOLDERS,
    }
    status = 200 if form.is_valid() else 400
    if request.htmx.target == "saved-reply-results":  # type: ignore[attr-defined]
        return render(request, PAGE + "#results", context, status=status)
    return render(request, PAGE, context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def saved_reply_new(request: HttpRequest) -> HttpResponse:
    operator = base.operator(request)
    if request.method == "GET":
        return _form_page(request, SavedReplyForm(operator=operator), None)
    form = SavedReplyForm(request.POST, operator=operator)
    if not form.is_valid():
        return _form_page(request, form, None, status=400)
    try:
        saved_reply = replies.create_saved_reply(**form.cleaned_data, by=operator)
    except ValidationError as error:
        _invalid(form, error)
        return _form_page(request, form, None, status=422)
    return _saved(request, saved_reply, _("Saved reply “%(title)s” added.") % {"title": saved_reply.title})


@require_http_methods(["GET", "POST"])
@login_required
def saved_reply_edit(request: HttpRequest, pk: int) -> HttpResponse:
    operator = base.operator(request)
    saved_reply = _manageable(request, pk)
    if request.method == "GET":
        initial = {"title": saved_reply.title, "text": saved_reply.text, "team": saved_reply.team}
        return _form_page(request, SavedReplyForm(operator=operator, initial=initial), saved_reply)
    form = SavedReplyForm(request.POST, operator=operator)
    if not form.is_valid():
        return _form_page(request, form, saved_reply, status=400)
    try:
        replies.update_saved_reply(saved_reply=saved_reply, **form.cleaned_data, by=operator)
    except ValidationError as error:
        _invalid(form, error)
        return _form_page(request, form, saved_reply, status=422)
    return _saved(request, saved_reply, _("Saved reply “%(title)s” saved.") % {"title": saved_reply.title})


@require_POST
@login_required
def saved_reply_delete(request: HttpRequest, pk: int) -> HttpResponse:
    saved_reply = _manageable(request, pk)
    replies.delete_saved_reply(saved_reply=saved_reply, by=base.operator(request))
    messages.success(request, _("Saved reply “%(title)s” deleted.") % {"title": saved_reply.title})
    return HttpResponseRedirect(reverse("inbox:saved_replies"))


# -- the reply box's picker -----------------------------------------------------------------------------


@require_GET
@login_required
def saved_reply_picker(request: HttpRequest, pk: int) -> HttpResponse:
    """The saved replies matching ``q`` for the picker of conversation ``pk`` (404 for another team's)."""
    conversation = base.conversation_or_404(request, pk)
    form = SavedReplySearchForm(request.GET)
    if not form.is_valid():
        return HttpResponse(_("Search with at most 100 characters."), status=400)
    query = form.cleaned_data["q"]
    found = saved_replies.saved_replies(operator=base.operator(request), query=query, limit=PICKER_SIZE)
    context = {"conversation": conversation, "saved_replies": found, "query": query}
    return render(request, "inbox/partials/saved_reply_results.html", context)


@require_GET
@login_required
def saved_reply_text(request: HttpRequest, pk: int, reply_id: int) -> HttpResponse:
    """The saved reply's text filled in for the conversation, as plain text for the reply box.

    404 unless the operator may see both the conversation and the saved reply.
    """
    conversation = base.conversation_or_404(request, pk)
    operator = base.operator(request)
    try:
        saved_reply = saved_replies.saved_reply_for(operator=operator, saved_reply_id=reply_id)
    except SavedReply.DoesNotExist:
        raise Http404(_("No such saved reply.")) from None
    text = replies.render_for(saved_reply=saved_reply, conversation=conversation, operator=operator)
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "private, no-store"
    return response
