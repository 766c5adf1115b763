"""Reads of saved replies: the ones an operator may use, for the page and the reply box's picker."""

from __future__ import annotations

from django.db.models import Case, Q, When

from inbox.models import Operator, SavedReply


def saved_replies(*, operator: Operator, query: str = "", limit: int | None = None) -> list[SavedReply]:
    """The saved replies the operator may use, matching ``query`` in the title or the text.

    Title matches come first, then by title. One query.
    """
    replies = SavedReply.objects.visible_to(operator).select_related("team")
    words = query.split()
    for word in words:
        replies = replies.filter(Q(title__icontains=word) | Q(text__icontains=word))
    if words:
        in_title = Q()
        for word in words:
            in_title &= Q(title__icontains=word)
        replies = replies.annotate(title_match=Case(When(in_title, then=0), default=1)).order_by(
            "title_match", "title", "pk"
        )
    return list(replies[:limit] if limit else replies)


def saved_reply_for(*, operator: Operator, saved_reply_id: int) -> SavedReply:
    """A saved reply the operator may use; ``SavedReply.DoesNotExist`` otherwise."""
    return SavedReply.objects.visible_to(operator).select_related("team").get(pk=saved_reply_id)
