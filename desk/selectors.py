"""Reads of the manager's tools. Conversations are always narrowed by the one visibility rule
(``Conversation.objects.visible_to``)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from cachetools import TTLCache, cached
from django.db.models import Count, Q, QuerySet, Sum

from desk import sla
from desk.models import ConversationLabel, ConversationSla, CsatResponse, Label
from inbox.models import Conversation, Operator

COLOURS_TTL = 5.0  # seconds a process trusts its copy of the label colours


def all_labels() -> list[Label]:
    return list(Label.objects.all())


def label_or_none(pk: int) -> Label | None:
    return Label.objects.filter(pk=pk).first()


def conversation_labels(conversation: Conversation) -> list[Label]:
    return list(Label.objects.filter(links__conversation=conversation).order_by("name"))


def colour_of(name: str) -> str:
    """A label's colour by name, for the inbox list's rows: read once per ``COLOURS_TTL`` per
    process, so a page of rows costs at most one query, however many labels they carry."""
    return _colours().get(name, Label.Colour.GREY)


@cached(TTLCache(maxsize=1, ttl=COLOURS_TTL), lock=threading.Lock())
def _colours() -> dict[str, str]:
    return dict(Label.objects.values_list("name", "colour"))


def forget_colours() -> None:
    _colours.cache_clear()


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


# -- SLA ---------------------------------------------------------------------------------------------


def sla_targets(clock: ConversationSla, *, now: datetime) -> dict[str, Any]:
    """What the thread shows of a clock: each target of its policy with its state (``met``,
    ``missed``, ``running``, ``paused``, ``waiting``: not started), its due time and the level."""
    policy = clock.policy
    targets = []
    active = sla.active_targets(clock)
    for target in sla.TARGETS:
        minutes = getattr(policy, f"{target}_minutes", None)
        if not minutes:
            continue
        done, breached = getattr(clock, f"{target}_at"), getattr(clock, f"{target}_breached_at")
        due = getattr(clock, f"{target}_due")
        if breached:
            state = "missed"
        elif done:
            state = "met"
        elif target in active and clock.running and due is not None:
            state = "missed" if due <= now else "running"
        elif target in active:
            state = "paused"
        else:
            state = "waiting"
        left = max(minutes * 60 - getattr(clock, f"{target}_spent"), 0)
        targets.append(
            {
                "key": target,
                "minutes": minutes,
                "state": state,
                "due": due,
                "done": done,
                "breached": breached,
                "left_minutes": int(left // 60),
            }
        )
    return {"targets": targets, "level": sla.level(clock, now=now), "policy": policy}


def sla_summary(
    *, operator: Operator, since: datetime, until: datetime, team_id: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The share of conversations started in the period (of the operator's teams, and of the chosen
    team) under an SLA policy that missed no target so far, per channel (the one the customer last
    wrote on) and per team. One query, grouped by both; the two tables are summed from it."""
    clocks = ConversationSla.objects.filter(
        conversation__in=Conversation.objects.visible_to(operator).filter(created_at__gte=since, created_at__lt=until),
        policy__isnull=False,
    )
    if team_id is not None:
        clocks = clocks.filter(conversation__team_id=team_id)
    rows = clocks.values("conversation__last_channel__name", "conversation__team__name").annotate(
        total=Count("pk"), met=Count("pk", filter=Q(breaches=0))
    )
    by: dict[str, dict[str, dict[str, Any]]] = {"channels": {}, "teams": {}}
    for row in rows:
        names = {"channels": row["conversation__last_channel__name"], "teams": row["conversation__team__name"]}
        for table, name in names.items():
            entry = by[table].setdefault(name or "—", {"name": name or "—", "total": 0, "met": 0})
            entry["total"] += row["total"]
            entry["met"] += row["met"]
    result: dict[str, list[dict[str, Any]]] = {}
    for table, entries in by.items():
        result[table] = sorted(entries.values(), key=lambda e: str(e["name"]).casefold())
        for entry in result[table]:
            entry["share"] = round(100 * entry["met"] / entry["total"]) if entry["total"] else None
    return result


def _csat_figures(count: int, total: int, happy: int, **extra: object) -> dict[str, object]:
    return {
        **extra,
        "count": count,
        "average": round(total / count, 2) if count else None,
        "happy_share": round(100 * happy / count, 1) if count else None,
    }


def csat_summary(
    *, operator: Operator, since: datetime, until: datetime, team_id: int | None = None
) -> dict[str, object]:
    """The satisfaction answers given in the period to the operator's teams' conversations (all for
    staff): average score, how many, and the share of 4s and 5s, overall and by channel, team and
    operator (who had the conversation when it was resolved).

    One query: the answers grouped by channel, team and operator (a few hundred groups at most),
    summed up here for each breakdown."""
    answers = CsatResponse.objects.filter(
        score__isnull=False,
        answered_at__gte=since,
        answered_at__lt=until,
        conversation__in=Conversation.objects.visible_to(operator).values("pk"),
    )
    if team_id is not None:
        answers = answers.filter(team_id=team_id)
    groups = answers.values(
        "channel_id",
        "channel__name",
        "team_id",
        "team__name",
        "operator_id",
        "operator__display_name",
        "operator__username",
    ).annotate(count=Count("pk"), total=Sum("score"), happy=Count("pk", filter=Q(score__gte=4)))
    # For each breakdown: key -> [label, answers, sum of scores, 4s and 5s].
    sums: dict[str, dict[object, list[Any]]] = {"channel": {}, "team": {}, "operator": {}}
    overall = [0, 0, 0]
    for group in groups:
        figures = (int(group["count"]), int(group["total"] or 0), int(group["happy"]))
        operator_name = group["operator__display_name"] or group["operator__username"]
        for by, key, name in (
            ("channel", group["channel_id"], group["channel__name"]),
            ("team", group["team_id"], group["team__name"]),
            ("operator", group["operator_id"], operator_name),
        ):
            row = sums[by].setdefault(key, [name or "—", 0, 0, 0])
            for index, value in enumerate(figures, start=1):
                row[index] += value
        overall = [a + b for a, b in zip(overall, figures, strict=True)]

    def rows(by: str) -> list[dict[str, object]]:
        ordered = sorted(sums[by].items(), key=lambda item: (str(item[1][0]).lower(), str(item[0])))
        return [_csat_figures(c, t, h, label=label, pk=key) for key, (label, c, t, h) in ordered]

    return {
        "total": _csat_figures(*overall),
        "by_channel": rows("channel"),
        "by_team": rows("team"),
        "by_operator": rows("operator"),
    }
