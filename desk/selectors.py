"""Reads of the manager's tools. Conversations are always narrowed by the one visibility rule
(``Conversation.objects.visible_to``)."""

from __future__ import annotations

import time
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from desk.models import ConversationLabel, Label
from inbox.models import Conversation, Operator

COLOURS_TTL = 5.0  # seconds a process trusts its copy of the label colours
_colours: tuple[float, dict[str, str]] = (0.0, {})


def all_labels() -> list[Label]:
    return list(Label.objects.all())


def label_or_none(pk: int) -> Label | None:
    return Label.objects.filter(pk=pk).first()


def conversation_labels(conversation: Conversation) -> list[Label]:
    return list(Label.objects.filter(links__conversation=conversation).order_by("name"))


def colour_of(name: str) -> str:
    """A label's colour by name, for the inbox list's rows: read once per ``COLOURS_TTL`` per
    process, so a page of rows costs at most one query, however many labels they carry."""
    global _colours  # a small per-process cache
    now = time.monotonic()
    expires, colours = _colours
    if expires <= now:
        colours = dict(Label.objects.values_list("name", "colour"))
        _colours = (now + COLOURS_TTL, colours)
    return colours.get(name, Label.Colour.GREY)


def forget_colours() -> None:
    global _colours  # a small per-process cache
    _colours = (0.0, {})


def label_counts(
    *, operator: Operator, since: datetime, until: datetime, team_id: int | None = None
) -> list[dict[str, object]]:
    """For each label: how many of the operator's teams' conversations started in the period carry it,
    and how many of those are resolved. Labels no such conversation carries are listed with zero. One query."""
    conversations = Conversation.objects.visible_to(operator).filter(created_at__gte=since, created_at__lt=until)
    if team_id is not None:
        conversations = conversations.filter(team_id=team_id)
    counted = Q(links__conversation__in=conversations.values("pk"))
    resolved = counted & Q(links__conversation__status=Conversation.Status.RESOLVED)
    labels = Label.objects.annotate(
        started=Count("links", filter=counted), resolved=Count("links", filter=resolved)
    ).order_by("name", "pk")
    return [{"label": label, "conversations": label.started, "resolved": label.resolved} for label in labels]


def conversations_with_label(label_id: int) -> QuerySet[ConversationLabel, int]:
    """The ids of the conversations that carry a label, as a subquery."""
    return ConversationLabel.objects.filter(label_id=label_id).values_list("conversation_id", flat=True)
