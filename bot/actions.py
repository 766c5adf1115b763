"""Thread actions on the bot's side: give a conversation back to the bot, teach it from an answer.

Function views in the inbox's style, on its public view helpers (:mod:`inbox.views.base`): one
access helper finds the conversation or message (404 for another team's), one form, one service
call, one fragment. Refusals come back as a 4xx fragment in the thread's alert region.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from bot import services, teaching
from bot.models import Article
from inbox.models import Message
from inbox.services import conversations
from inbox.views import base


class ExampleForm(forms.Form):
    """Where the question goes: an article's id, ``new`` for a new article, or nothing for the default."""

    choice = forms.CharField(label=gettext_lazy("Article"), required=False, max_length=20)

    def clean_choice(self) -> Article | str | None:
        value = self.cleaned_data.get("choice") or ""
        if not value:
            return None
        if value == "new":
            return "new"
        try:
            return Article.objects.active().get(pk=int(value))
        except (ValueError, Article.DoesNotExist):
            raise forms.ValidationError(_("Pick an article of the knowledge base.")) from None


@require_POST
@login_required
def give_back(request: HttpRequest, pk: int) -> HttpResponse:
    """The bot answers the customer's next message; the assignee is cleared."""
    return base.act(request, pk, lambda c: services.give_back_to_bot(conversation=c, by=base.operator(request)))


def _picker(request: HttpRequest, message: Message, status: int = 200) -> HttpResponse:
    suggestion = teaching.suggest_example(message=message)
    can_create = base.operator(request).is_staff
    candidates = [article.pk for article, _confidence in suggestion.candidates]
    current = (message.metadata.get("example") or {}).get("article_id")
    if current in candidates:
        selected: int | str = current
    elif suggestion.default is not None:
        selected = suggestion.default.pk
    else:
        selected = "new" if can_create or not candidates else candidates[0]
    context: dict[str, Any] = {
        "message": message,
        "suggestion": suggestion,
        "can_create": can_create,
        "selected": selected,
    }
    response = render(request, "inbox/partials/example_picker.html", context, status=status)
    return reswap(retarget(response, f"#example-{message.pk}"), "innerHTML")


@require_POST
@login_required
def make_example(request: HttpRequest, pk: int) -> HttpResponse:
    """One click: the question this answer replied to becomes an example question of the default article."""
    message = base.message_or_404(request, pk)
    form = ExampleForm(request.POST)
    if not form.is_valid():
        return base.form_problem(request, form)
    choice = form.cleaned_data["choice"]
    try:
        teaching.add_example_question(
            message=message,
            by=base.operator(request),
            article=choice if isinstance(choice, Article) else None,
            new_article=choice == "new",
        )
    except teaching.PickAnArticle:
        return _picker(request, message)
    except conversations.ReplyRefused as refused:
        return base.problem(request, refused.reason, status=409)
    except PermissionDenied as denied:
        return base.problem(request, str(denied) or _("You may not do that."), status=403)
    return base.message_response(request, message)


@require_GET
@login_required
def example_picker(request: HttpRequest, pk: int) -> HttpResponse:
    """Pick the article a question belongs to (after the one click, or when nothing was close)."""
    message = base.message_or_404(request, pk)
    if request.GET.get("cancel"):
        return render(request, "inbox/partials/example_action.html", {"message": message})
    try:
        return _picker(request, message)
    except conversations.ReplyRefused as refused:
        return base.problem(request, refused.reason, status=409)
