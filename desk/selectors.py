"""Reads of the manager's tools. Conversations are always narrowed by the one visibility rule
(``Conversation.objects.visible_to``)."""

from __future__ import annotations

import time
from datetime import datetime

from django.db.models import Avg, Count, Q, QuerySet

from desk.models import ConversationLabel, CsatResponse, Label
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


def _csat_rows(answers: QuerySet[CsatResponse], key: str, *names: str) -> list[dict[str, object]]:
    rows = []
    for row in (
        answers.values(key, *names)
        .annotate(count=Count("pk"), average=Avg("score"), happy=Count("pk", filter=Q(score__gte=4)))
        .order_by(*names, key)
    ):
        label = next((str(row[name]) for name in names if row[name]), "—")
        rows.append(_csat_figures(row, label=label, pk=row[key]))
    return rows


def _csat_figures(row: dict[str, object], **extra: object) -> dict[str, object]:
    count = int(row["count"] or 0)  # type: ignore[call-overload]
    average = row["average"]
    return {
        **extra,
        "count": count,
        "average": round(float(average), 2) if average is not None and count else None,  # type: ignore[arg-type]
        "happy_share": round(100 * int(row["happy"] or 0) / count, 1) if count else None,  # type: ignore[call-overload]
    }


def csat_summary(
    *, operator: Operator, since: datetime, until: datetime, team_id: int | None = None
) -> dict[str, object]:
    """The satisfaction answers given in the period to the operator's teams' conversations (all for
    staff): average score, how many, and the share of 4s and 5s, overall and by channel, team and
    operator (who had the conversation when it was resolved). Four queries, whatever the data."""
    answers = CsatResponse.objects.filter(
        score__isnull=False,
        answered_at__gte=since,
        answered_at__lt=until,
        conversation__in=Conversation.objects.visible_to(operator).values("pk"),
    )
    if team_id is not None:
        answers = answers.filter(team_id=team_id)
    total = answers.aggregate(count=Count("pk"), average=Avg("score"), happy=Count("pk", filter=Q(score__gte=4)))
    return {
        "total": _csat_figures(total),
        "by_channel": _csat_rows(answers, "channel_id", "channel__name"),
        "by_team": _csat_rows(answers, "team_id", "team__name"),
        "by_operator": _csat_rows(answers, "operator_id", "operator__display_name", "operator__username"),
    }
