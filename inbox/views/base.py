"""What the inbox's views share, public for every view that works on a conversation or a message
(the inbox's own, saved replies, the bot's thread actions).

A view finds its conversation or message through :func:`conversation_or_404` or
:func:`message_or_404` (404 for another team's), validates one form, calls one service and renders
one fragment. Errors a person can cause come back through :func:`problem` as a 4xx fragment in the
thread's alert region; :func:`act` runs one conversation action and answers with the refreshed
thread header.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django_htmx.http import reswap, retarget

from inbox.forms import SnoozeForm, teammates
from inbox.models import Conversation, Message, Operator
from inbox.selectors.conversations import conversation_for, message_for
from inbox.services import conversations


def operator(request: HttpRequest) -> Operator:
    user = request.user
    assert isinstance(user, Operator)  # noqa: S101 - login_required ran first
    return user


def conversation_or_404(request: HttpRequest, pk: int) -> Conversation:
    """The conversation if the operator may see it; 404 otherwise (never reveal another team's)."""
    try:
        return conversation_for(operator=operator(request), conversation_id=pk)
    except Conversation.DoesNotExist:
        raise Http404(_("No such conversation.")) from None


def message_or_404(request: HttpRequest, pk: int) -> Message:
    try:
        return message_for(operator=operator(request), message_id=pk)
    except Message.DoesNotExist:
        raise Http404(_("No such message.")) from None


def problem(request: HttpRequest, message: str, status: int = 422) -> HttpResponse:
    """A 4xx answer the operator can read: shown in the thread's alert region."""
    response = render(request, "inbox/partials/problem.html", {"problem": message}, status=status)
    return reswap(retarget(response, "#thread-errors"), "innerHTML")


def form_problem(request: HttpRequest, form: Any) -> HttpResponse:
    errors = [str(error) for field_errors in form.errors.values() for error in field_errors]
    return problem(request, " ".join(errors) or _("Check the form and try again."), status=400)


def act(request: HttpRequest, pk: int, action: Any) -> HttpResponse:
    """Run one conversation action and answer with the refreshed thread header."""
    conversation = conversation_or_404(request, pk)
    try:
        result = action(conversation)
    except conversations.ReplyRefused as refused:
        return problem(request, refused.reason, status=409)
    except PermissionDenied as denied:
        return problem(request, str(denied) or _("You may not do that."), status=403)
    if isinstance(result, HttpResponse):
        return result
    conversation = conversation_or_404(request, pk)
    return render(
        request,
        "inbox/partials/thread_header.html",
        {"conversation": conversation, **header_context(conversation)},
    )


def message_response(request: HttpRequest, message: Message) -> HttpResponse:
    message = message_for(operator=operator(request), message_id=message.pk)
    return render(
        request,
        "inbox/partials/message.html",
        {"message": message, "customer": message.conversation.customer, "conversation": message.conversation},
    )


def header_context(conversation: Conversation) -> dict[str, Any]:
    return {
        "teammates": list(teammates(conversation)),
        "priorities": Conversation.Priority.choices,
        "snooze": SnoozeForm(),
    }
