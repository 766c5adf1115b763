"""Automation rules: *when* an event happens, *if* the conversation matches, *then* act.

The inbox's domain events (``inbox.signals``) are received after commit; each becomes a Celery
task (:mod:`desk.tasks`) that calls :func:`run_event` in the worker, so the writer that caused the
event never waits for the rules. Each delivery carries an ``event_id`` (the event's name and ids);
a rule claims ``(rule, event_id)`` with an insert that does nothing on a conflict before it acts,
so a re-delivered task runs no rule twice. Rules act through the inbox's own services, as the
system (``by=None``), and every step leaves an activity entry naming the rule.

Loops: while rules act, :data:`DEPTH` holds how deep in a chain of rules we are; the events the
actions cause are enqueued with that depth, and past :data:`MAX_DEPTH` no rule runs. One rule may
so trigger another (assign, then a rule on "assigned"), but two rules that undo each other stop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Count, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from audit import services as audit
from desk import services
from desk.models import Label, Rule, RuleRun
from inbox import assistant
from inbox.models import Conversation, Message, Operator, SavedReply, Team
from inbox.services import activity, conversations, outbound, replies

logger = logging.getLogger(__name__)

MAX_DEPTH = 3
DRY_RUN_SIZE = 50
# How deep in a chain of rules the current code runs (0: not inside a rule's actions).
DEPTH: ContextVar[int] = ContextVar("desk_rule_depth", default=0)

CONDITIONS = ("channels", "teams", "labels", "priorities", "text_contains", "hours", "languages")


@contextmanager
def acting(depth: int) -> Iterator[None]:
    """Mark the code inside as a rule's actions at ``depth`` (read by the event receivers)."""
    token = DEPTH.set(depth)
    try:
        yield
    finally:
        DEPTH.reset(token)


# -- managing rules ----------------------------------------------------------------------------------


def clean_conditions(conditions: dict[str, Any]) -> dict[str, Any]:
    """Only known keys, with values of the right shape; empty ones dropped. Raises ``ValidationError``."""
    cleaned: dict[str, Any] = {}
    for key, value in conditions.items():
        if key not in CONDITIONS:
            raise ValidationError(_("Unknown rule condition."))
        if value in (None, "", []):
            continue
        if key in ("channels", "teams", "labels", "priorities"):
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ValidationError(_("A rule condition lists ids."))
        elif key == "hours" and value not in ("open", "closed"):
            raise ValidationError(_("Business hours are “open” or “closed”."))
        elif key == "text_contains" and (not isinstance(value, str) or len(value) > 200):
            raise ValidationError(_("The text to look for is at most 200 characters."))
        elif key == "languages" and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise ValidationError(_("Languages are codes such as “ru” or “fa”."))
        cleaned[key] = value
    return cleaned


def clean_actions(actions: list[dict[str, Any]], *, team_id: int | None) -> list[dict[str, Any]]:
    """The steps of a rule, checked as a macro's are, plus ``assign_team`` and ``note``."""
    cleaned: list[dict[str, Any]] = []
    macro_steps = []
    for step in actions:
        action = step.get("action")
        if action not in Rule.ACTIONS:
            raise ValidationError(_("Unknown rule action."))
        if action == "assign_team" and not Team.objects.filter(pk=services.id_in(step, "team")).exists():
            raise ValidationError(_("No such team."))
        if action == "assign" and step.get("operator") == "me":
            raise ValidationError(_("A rule assigns to a named operator."))
        if action == "note" and not str(step.get("text", "")).strip():
            raise ValidationError(_("The note is empty."))
        if action not in ("assign_team", "note"):
            macro_steps.append(step)
        cleaned.append(step)
    if macro_steps:
        services.clean_actions(macro_steps, team_id=team_id)
    if not cleaned:
        raise ValidationError(_("A rule needs at least one action."))
    return cleaned


def check(rule: Rule) -> Rule:
    if rule.when == Rule.When.NO_REPLY and not rule.no_reply_minutes:
        raise ValidationError({"no_reply_minutes": _("Say after how many minutes without a reply.")})
    if rule.when != Rule.When.NO_REPLY:
        rule.no_reply_minutes = None
    rule.conditions = clean_conditions(rule.conditions)
    rule.actions = clean_actions(rule.actions, team_id=rule.team_id)
    rule.full_clean(exclude=["conditions", "actions"])
    return rule


@transaction.atomic
def save_rule(*, rule: Rule, by: Operator) -> Rule:
    """Create or change a rule (staff)."""
    services.require_staff(by)
    created = rule.pk is None
    if created:
        rule.created_by = by
    check(rule).save()
    audit.record(
        action="created" if created else "changed",
        actor=by,
        target=rule,
        details={"when": rule.when, "actions": [a["action"] for a in rule.actions], "enabled": rule.enabled},
    )
    return rule


@transaction.atomic
def delete_rule(*, rule: Rule, by: Operator) -> None:
    services.require_staff(by)
    audit.record(action="deleted", actor=by, target=rule, details={"name": rule.name})
    rule.delete()


# -- matching ----------------------------------------------------------------------------------------


@dataclass
class Facts:
    """What the conditions look at, read once per event (or per conversation in a dry run)."""

    conversation: Conversation
    channel_id: int | None
    text: str
    at: datetime
    label_ids: set[int] = field(default_factory=set)
    _hours: dict[int | None, bool] = field(default_factory=dict)

    def team_open(self) -> bool:
        team_id = self.conversation.team_id
        if team_id not in self._hours:
            self._hours[team_id] = assistant.team_hours(team_id=team_id, at=self.at).open
        return self._hours[team_id]


def facts_for(conversation: Conversation, *, message: Message | None = None, at: datetime | None = None) -> Facts:
    if message is None:
        message = (
            Message.objects.filter(conversation=conversation, direction=Message.Direction.INBOUND)
            .order_by("-created_at", "-pk")
            .only("text", "channel_id")
            .first()
        )
    label_ids = set(conversation.label_links.values_list("label_id", flat=True)) if conversation.labels else set()
    return Facts(
        conversation=conversation,
        channel_id=message.channel_id if message is not None else conversation.last_channel_id,
        text=message.text if message is not None else "",
        at=at or timezone.now(),
        label_ids=label_ids,
    )


def matches(rule: Rule, facts: Facts) -> bool:
    """Whether every condition of ``rule`` holds (a rule of another team never matches)."""
    conversation = facts.conversation
    if rule.team_id is not None and rule.team_id != conversation.team_id:
        return False
    c = rule.conditions
    if c.get("channels") and facts.channel_id not in c["channels"]:
        return False
    if c.get("teams") and conversation.team_id not in c["teams"]:
        return False
    if c.get("labels") and not facts.label_ids.intersection(c["labels"]):
        return False
    if c.get("priorities") and conversation.priority not in c["priorities"]:
        return False
    if c.get("text_contains") and str(c["text_contains"]).casefold() not in facts.text.casefold():
        return False
    if c.get("languages"):
        language = (conversation.customer.language or "").lower()
        if not any(language == code.lower() or language.startswith(code.lower() + "-") for code in c["languages"]):
            return False
    return not c.get("hours") or facts.team_open() == (c["hours"] == "open")


# The enabled rules of each event, kept per process and checked against a one-row signature (how
# many, the latest change) on every use: the worker runs rules for every customer message, and
# building 100 rules with their JSON conditions and actions each time was most of what rules that
# do not match cost (bench.rules). A rule saved, disabled or deleted anywhere is seen at once.
_enabled: dict[str, tuple[tuple[int, datetime | None], list[Rule]]] = {}


def enabled_rules(when: str) -> list[Rule]:
    """Every enabled rule for ``when``, in order (a per-process copy, checked fresh)."""
    found = Rule.objects.filter(when=when, enabled=True)
    signature = found.aggregate(count=Count("pk"), latest=Max("updated_at"))
    key = (signature["count"], signature["latest"])
    cached = _enabled.get(when)
    if cached is None or cached[0] != key:
        cached = (key, list(found))
        _enabled[when] = cached
    return cached[1]


def rules_for(when: str, team_id: int | None, *, minutes: int | None = None) -> list[Rule]:
    """The enabled rules for an event on a team's conversation, in order ("no reply": of N minutes)."""
    return [
        rule
        for rule in enabled_rules(when)
        if rule.team_id in (None, team_id) and (when != Rule.When.NO_REPLY or rule.no_reply_minutes == minutes)
    ]


def dry_run(rule: Rule, *, last: int = DRY_RUN_SIZE) -> list[tuple[Conversation, bool]]:
    """The last ``last`` conversations (of the rule's team, newest activity first) and whether the
    rule's conditions hold for each now (the text: the customer's latest message; business hours:
    at the conversation's last activity). Acts on nothing."""
    recent = Conversation.objects.select_related("customer").order_by("-last_message_at", "-pk")
    if rule.team_id is not None:
        recent = recent.filter(team_id=rule.team_id)
    return [(c, matches(rule, facts_for(c, at=c.last_message_at))) for c in recent[:last]]


# -- running -----------------------------------------------------------------------------------------


def claim(rule: Rule, event_id: str, conversation_id: int) -> bool:
    """True the first time ``rule`` runs for ``event_id``; False ever after (a re-delivery)."""
    table = connection.ops.quote_name(RuleRun._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (rule_id, event_id, conversation_id, created_at) "  # noqa: S608 - our table's name
            "VALUES (%s, %s, %s, %s) ON CONFLICT (rule_id, event_id) DO NOTHING RETURNING id",
            [rule.pk, event_id, conversation_id, timezone.now()],
        )
        return cursor.fetchone() is not None


def run_event(
    *,
    when: str,
    event_id: str,
    conversation_id: int,
    message_id: int | None = None,
    depth: int = 0,
    minutes: int | None = None,
) -> list[int]:
    """Run the enabled rules for ``when`` on the conversation, in order; the ids of those that acted."""
    if depth >= MAX_DEPTH:
        logger.warning("rules: %s stopped at depth %s (a chain of rules)", event_id, depth)
        return []
    conversation = Conversation.objects.select_related("customer").filter(pk=conversation_id).first()
    if conversation is None:
        return []
    candidates = list(rules_for(when, conversation.team_id, minutes=minutes))
    if not candidates:
        return []
    message = (
        Message.objects.filter(pk=message_id).only("text", "channel_id", "metadata").first() if message_id else None
    )
    if message is not None and message.metadata.get("held"):
        return []  # an answer to a survey of ours (inbox.extensions: inbound holds), not a request
    acted: list[int] = []
    facts = facts_for(conversation, message=message)
    stale = False
    for rule in candidates:
        if stale:
            # The next rule sees what the last one did (a label added, a new team).
            conversation = Conversation.objects.select_related("customer").get(pk=conversation.pk)
            facts = facts_for(conversation, message=message)
            stale = False
        if not matches(rule, facts):
            continue
        # The marker wraps the commit: the actions' events are sent by its on-commit callbacks.
        with acting(depth + 1), transaction.atomic():
            if not claim(rule, event_id, conversation.pk):
                continue
            _act(rule, conversation, event_id)
        acted.append(rule.pk)
        stale = True
    return acted


def _act(rule: Rule, conversation: Conversation, event_id: str) -> None:
    """Every step, all or nothing; a refused step leaves one entry saying why (the claim stays)."""
    named = {"rule": rule.pk, "rule_name": rule.name, "event": event_id}
    try:
        with transaction.atomic():
            for step in rule.actions:
                describe = _run_step(rule, conversation, step)
                activity.record_activity(
                    conversation=conversation, action="rule_action", by=None, data={**named, "step": describe}
                )
    except (conversations.ReplyRefused, ValidationError, PermissionDenied) as refused:
        reason = getattr(refused, "reason", "") or " ".join(getattr(refused, "messages", [])) or str(refused)
        activity.record_activity(
            conversation=conversation, action="rule_failed", by=None, data={**named, "reason": reason}
        )


def _run_step(rule: Rule, conversation: Conversation, step: dict[str, Any]) -> str:
    """Run one step as the system; returns what it did, in words, for the thread."""
    action = step["action"]
    if action == "assign_team":
        team = Team.objects.filter(pk=services.id_in(step, "team")).first()
        if team is None:
            raise ValidationError(_("Its team was deleted."))
        services.move_to_team(conversation=conversation, team=team, by=None)
        return _("moved to %(team)s") % {"team": team.name}
    if action == "assign":
        operator = Operator.objects.filter(pk=services.id_in(step, "operator"), is_active=True).first()
        if operator is None:
            raise ValidationError(_("The operator it assigns to is gone."))
        conversations.assign_conversation(conversation=conversation, operator=operator, by=None)
        return _("assigned to %(name)s") % {"name": operator}
    if action == "add_label":
        label = Label.objects.filter(pk=services.id_in(step, "label")).first()
        if label is None:
            raise ValidationError(_("Its label was deleted."))
        services.add_label(conversation=conversation, label=label, by=None)
        return _("label %(name)s") % {"name": label.name}
    if action == "priority":
        priority = int(step["priority"])
        conversations.set_priority(conversation=conversation, priority=priority, by=None)
        return _("priority %(name)s") % {"name": Conversation.Priority(priority).label}
    if action == "reply":
        saved_reply = SavedReply.objects.filter(pk=services.id_in(step, "saved_reply")).first()
        if saved_reply is None:
            raise ValidationError(_("Its saved reply was deleted."))
        current = Conversation.objects.select_related("customer", "team").get(pk=conversation.pk)
        # The placeholders name whoever wrote the rule (nobody's name when they are gone).
        signer = rule.created_by or Operator(username="", display_name="")
        text = replies.render_for(saved_reply=saved_reply, conversation=current, operator=signer)
        outbound.reply(conversation=current, text=text, by=None)
        return _("replied with “%(title)s”") % {"title": saved_reply.title}
    if action == "note":
        _note(conversation, str(step["text"]))
        return _("added a note")
    if action == "resolve":
        conversations.resolve_conversation(conversation=conversation, by=None)
        return _("resolved")
    raise ValidationError(_("Unknown rule action."))


def _note(conversation: Conversation, text: str) -> None:
    outbound.add_note(conversation=conversation, text=text, by=None)  # type: ignore[arg-type]


# -- no reply for N minutes ---------------------------------------------------------------------------


def sweep_no_reply(*, now: datetime | None = None) -> list[tuple[int, int, str]]:
    """The "nobody replied for N minutes" events that are due: an open conversation waiting for us
    (``waiting_since``) at least N minutes. The event id names the waiting spell, so each rule
    runs once per conversation and spell (claimed as any event); returns (minutes, conversation,
    event id)."""
    now = now or timezone.now()
    due: list[tuple[int, int, str]] = []
    for minutes in (
        Rule.objects.filter(when=Rule.When.NO_REPLY, enabled=True).values_list("no_reply_minutes", flat=True).distinct()
    ):
        waiting = Conversation.objects.filter(
            status=Conversation.Status.OPEN,
            waiting_since__isnull=False,
            waiting_since__lte=now - timedelta(minutes=minutes or 0),
        ).values_list("pk", "waiting_since")[:1000]
        for pk, since in waiting:
            assert since is not None  # noqa: S101 - filtered above
            due.append((minutes or 0, pk, f"no_reply:{minutes}:{pk}:{since.timestamp():.0f}"))
    return due
