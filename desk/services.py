"""The writers of the manager's tools. Labels: staff define them; operators put them on the
conversations they may see. Macros: staff define them; operators run them on a conversation, every
step through the inbox's own services, all or nothing. Every change to a conversation bumps its version and is broadcast
(``inbox.services.conversations.touch``) and leaves an activity entry in the thread."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from functools import partial
from typing import Any

from cachetools import TTLCache, cached
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit import services as audit
from bot import hours
from desk import sla
from desk.models import ConversationLabel, ConversationSla, Label, Macro, SlaPolicy
from inbox import signals
from inbox.models import Conversation, Operator, SavedReply, Team
from inbox.realtime import publish
from inbox.services import activity, conversations, outbound, replies
from inbox.services.conversations import require_access, touch

logger = logging.getLogger(__name__)

MAX_LABELS_PER_CONVERSATION = 20


def require_staff(by: Operator) -> None:
    if not by.is_staff:
        raise PermissionDenied(_("Only admins manage labels."))


def _save_label(label: Label) -> Label:
    label.full_clean()  # the palette, the lengths and the unique name, as a readable error
    try:
        with transaction.atomic():
            label.save()
    except IntegrityError:
        raise ValidationError({"name": _("A label with this name exists already.")}) from None
    return label


@transaction.atomic
def create_label(*, name: str, colour: str, description: str = "", by: Operator) -> Label:
    require_staff(by)
    label = _save_label(Label(name=name.strip(), colour=colour, description=description.strip(), created_by=by))
    audit.record(action="created", actor=by, target=label, details={"colour": colour})
    return label


@transaction.atomic
def update_label(*, label: Label, name: str, colour: str, description: str = "", by: Operator) -> Label:
    """Rename or recolour a label; the conversations that carry it show the new name at once."""
    require_staff(by)
    old_name = label.name
    label.name, label.colour, label.description = name.strip(), colour, description.strip()
    _save_label(label)
    if label.name != old_name:
        for conversation in Conversation.objects.filter(label_links__label=label).select_for_update():
            _sync_names(conversation)
    audit.record(action="changed", actor=by, target=label, details={"from": old_name})
    return label


@transaction.atomic
def delete_label(*, label: Label, by: Operator) -> None:
    require_staff(by)
    carried = list(Conversation.objects.filter(label_links__label=label).select_for_update())
    audit.record(action="deleted", actor=by, target=label, details={"conversations": len(carried)})
    label.delete()
    for conversation in carried:
        _sync_names(conversation)


def _sync_names(conversation: Conversation) -> None:
    """Mirror the conversation's labels into ``Conversation.labels`` (names, sorted) and broadcast."""
    names = sorted(
        ConversationLabel.objects.filter(conversation=conversation).values_list("label__name", flat=True),
        key=str.casefold,
    )
    if names != conversation.labels:
        conversation.labels = names
        touch(conversation, "labels")


def add_label(*, conversation: Conversation, label: Label, by: Operator | None) -> bool:
    """Put ``label`` on the conversation; False when it was there already (nothing changes)."""
    require_access(by, conversation)
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if ConversationLabel.objects.filter(conversation=conversation).count() >= MAX_LABELS_PER_CONVERSATION:
            raise ValidationError(
                _("A conversation carries at most %(count)d labels.") % {"count": MAX_LABELS_PER_CONVERSATION}
            )
        _link, created = ConversationLabel.objects.get_or_create(
            conversation=conversation, label=label, defaults={"added_by": by}
        )
        if not created:
            return False
        _sync_names(conversation)
        transaction.on_commit(partial(sync_sla, conversation.pk))  # a label may narrow the policy
        activity.record_activity(
            conversation=conversation, action="label_added", by=by, data={"label": label.pk, "label_name": label.name}
        )
    return True


def remove_label(*, conversation: Conversation, label: Label, by: Operator | None) -> bool:
    """Take ``label`` off the conversation; False when it was not there."""
    require_access(by, conversation)
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        deleted, _kinds = ConversationLabel.objects.filter(conversation=conversation, label=label).delete()
        if not deleted:
            return False
        _sync_names(conversation)
        transaction.on_commit(partial(sync_sla, conversation.pk))
        activity.record_activity(
            conversation=conversation, action="label_removed", by=by, data={"label": label.pk, "label_name": label.name}
        )
    return True


# -- macros ------------------------------------------------------------------------------------------


class MacroFailed(Exception):
    """A step of a macro was refused; nothing of the macro happened. ``reason`` is for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def id_in(step: dict[str, Any], key: str) -> int:
    """A row id a macro step names; 0 (no row) for anything that is not one."""
    value = step.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def clean_actions(actions: list[dict[str, Any]], *, team_id: int | None) -> list[dict[str, Any]]:
    """The steps of a macro, checked: known actions, existing labels and saved replies (of the
    macro's team or everyone's), a known priority. Raises ``ValidationError``."""
    cleaned: list[dict[str, Any]] = []
    for step in actions:
        action = step.get("action")
        if action not in Macro.ACTIONS:
            raise ValidationError(_("Unknown macro action."))
        if action == "add_label" and not Label.objects.filter(pk=id_in(step, "label")).exists():
            raise ValidationError(_("No such label."))
        if action == "priority" and step.get("priority") not in Conversation.Priority.values:
            raise ValidationError(_("Unknown priority."))
        if (
            action == "assign"
            and step.get("operator") != "me"
            and not Operator.objects.filter(pk=id_in(step, "operator")).exists()
        ):
            raise ValidationError(_("No such operator."))
        if action == "reply":
            usable = SavedReply.objects.filter(pk=id_in(step, "saved_reply"))
            usable = (
                usable.filter(team__isnull=True)
                if team_id is None
                else usable.filter(team__isnull=True) | usable.filter(team_id=team_id)
            )
            if not usable.exists():
                raise ValidationError(_("Pick a saved reply every conversation of the macro's team may use."))
        cleaned.append(step)
    if not cleaned:
        raise ValidationError(_("A macro needs at least one action."))
    return cleaned


def _save_macro(macro: Macro) -> Macro:
    macro.full_clean(exclude=["actions"])
    try:
        with transaction.atomic():
            macro.save()
    except IntegrityError:
        raise ValidationError({"name": _("A macro with this name exists already for this team.")}) from None
    return macro


@transaction.atomic
def create_macro(*, name: str, team_id: int | None, actions: list[dict[str, Any]], by: Operator) -> Macro:
    require_staff(by)
    macro = Macro(name=name.strip(), team_id=team_id, actions=clean_actions(actions, team_id=team_id), created_by=by)
    _save_macro(macro)
    audit.record(action="created", actor=by, target=macro, details={"actions": [a["action"] for a in macro.actions]})
    return macro


@transaction.atomic
def update_macro(*, macro: Macro, name: str, team_id: int | None, actions: list[dict[str, Any]], by: Operator) -> Macro:
    require_staff(by)
    macro.name, macro.team_id, macro.actions = name.strip(), team_id, clean_actions(actions, team_id=team_id)
    _save_macro(macro)
    audit.record(action="changed", actor=by, target=macro, details={"actions": [a["action"] for a in macro.actions]})
    return macro


@transaction.atomic
def delete_macro(*, macro: Macro, by: Operator) -> None:
    require_staff(by)
    audit.record(action="deleted", actor=by, target=macro)
    macro.delete()


def run_macro(*, conversation: Conversation, macro: Macro, by: Operator) -> Conversation:
    """Run every step of ``macro`` on the conversation, in order, in one transaction: all happen or
    none does (a reply the channel refuses stops the macro before anything is stored or sent).
    Each step leaves its own activity entry; one more names the macro. Raises :class:`MacroFailed`
    with the reason, ``PermissionDenied`` for a conversation or macro the operator may not use."""
    require_access(by, conversation)
    if not Macro.objects.visible_to(by).for_conversation(conversation).filter(pk=macro.pk).exists():
        raise PermissionDenied(_("This macro is not for this conversation's team."))
    try:
        with transaction.atomic():
            activity.record_activity(
                conversation=conversation, action="macro_run", by=by, data={"macro": macro.pk, "macro_name": macro.name}
            )
            for step in macro.actions:
                _run_step(conversation, step, by)
    except (conversations.ReplyRefused, ValidationError, PermissionDenied) as refused:
        reason = getattr(refused, "reason", "") or " ".join(getattr(refused, "messages", [])) or str(refused)
        raise MacroFailed(
            _("The macro “%(name)s” did nothing: %(reason)s") % {"name": macro.name, "reason": reason}
        ) from refused
    return Conversation.objects.get(pk=conversation.pk)


def _run_step(conversation: Conversation, step: dict[str, Any], by: Operator) -> None:
    action = step["action"]
    if action == "add_label":
        label = Label.objects.filter(pk=id_in(step, "label")).first()
        if label is None:
            raise ValidationError(_("Its label was deleted."))
        add_label(conversation=conversation, label=label, by=by)
    elif action == "priority":
        conversations.set_priority(conversation=conversation, priority=int(step["priority"]), by=by)
    elif action == "assign":
        operator = (
            by
            if step.get("operator") == "me"
            else Operator.objects.filter(pk=id_in(step, "operator"), is_active=True).first()
        )
        if operator is None:
            raise ValidationError(_("The operator it assigns to is gone."))
        conversations.assign_conversation(conversation=conversation, operator=operator, by=by)
    elif action == "reply":
        saved_reply = SavedReply.objects.filter(pk=id_in(step, "saved_reply")).first()
        if saved_reply is None:
            raise ValidationError(_("Its saved reply was deleted."))
        current = Conversation.objects.select_related("customer", "team").get(pk=conversation.pk)
        text = replies.render_for(saved_reply=saved_reply, conversation=current, operator=by)
        outbound.reply(conversation=current, text=text, by=by)
    elif action == "resolve":
        conversations.resolve_conversation(conversation=conversation, by=by)
    else:
        raise ValidationError(_("Unknown macro action."))


# -- teams -------------------------------------------------------------------------------------------


def move_to_team(*, conversation: Conversation, team: Team, by: Operator | None) -> Conversation:
    """Hand the conversation to another team's queue (an automation rule's "assign to team").

    An assignee who is not in the new team lets go of it (unassigned, with the reason); the
    conversation then waits in the new team's queue and routing picks it up."""
    require_access(by, conversation)
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.team_id == team.pk:
            return conversation
        assignee = conversation.assignee
        conversation.team = team
        touch(conversation, "team")
        activity.record_activity(
            conversation=conversation, action="team_changed", by=by, data={"team": team.pk, "team_name": team.name}
        )
        if assignee is not None and not (assignee.is_staff or team.pk in assignee.team_ids):
            conversation = conversations.unassign_conversation(
                conversation=conversation, by=None, reason=_("moved to another team")
            )
        elif assignee is None:
            transaction.on_commit(
                lambda: signals.conversation_queued.send(sender=Conversation, conversation_id=conversation.pk)
            )
    return conversation


# -- SLA policies and clocks ---------------------------------------------------------------------------

TARGET_NAMES = {
    "first_response": gettext_lazy("first response"),
    "next_response": gettext_lazy("next response"),
    "resolution": gettext_lazy("resolution"),
}

# The enabled policies by team, kept a few seconds per process: a customer message costs no query
# for SLAs while no team has a policy. A policy saved or deleted in this process is seen at once; in
# another process within POLICIES_SECONDS.
POLICIES_SECONDS = 5.0


@cached(TTLCache(maxsize=1, ttl=POLICIES_SECONDS), lock=threading.Lock())
def policies_by_team() -> dict[int, list[SlaPolicy]]:
    found: dict[int, list[SlaPolicy]] = {}
    for policy in SlaPolicy.objects.filter(enabled=True).select_related("label").order_by("position", "pk"):
        found.setdefault(policy.team_id, []).append(policy)
    return found


def forget_policies() -> None:
    policies_by_team.cache_clear()


def policy_for(conversation: Conversation) -> SlaPolicy | None:
    """The first enabled policy of the conversation's team, by position, whose priority and label
    (when it names them) the conversation has."""
    for policy in policies_by_team().get(conversation.team_id or 0, []):
        if policy.matches(conversation, conversation.labels or []):
            return policy
    return None


def schedule_for(policy: SlaPolicy | None) -> hours.Schedule | None:
    """The business hours a policy counts in (None: around the clock)."""
    if policy is None or not policy.business_hours:
        return None
    return hours.cached_schedule(policy.team_id)


def _state(conversation: Conversation) -> sla.State:
    return sla.State(
        open=conversation.status == Conversation.Status.OPEN,
        resolved=conversation.status == Conversation.Status.RESOLVED,
        human=conversation.handler == Conversation.Handler.HUMAN,
        waiting_since=conversation.waiting_since,
    )


def _shown(row: ConversationSla) -> tuple[Any, ...]:
    """What the thread and the row show of a clock, to the second: a change of it is broadcast (a
    running clock that merely counted on keeps its due times, give or take float rounding)."""
    dues = (getattr(row, f"{t}_due") for t in sla.TARGETS)
    return (row.policy_id, row.running, *(due and due.replace(microsecond=0) for due in dues), row.breaches)


def sync_sla(conversation_id: int, *, now: datetime | None = None) -> ConversationSla | None:
    """Bring the conversation's SLA clock to its state now (:func:`desk.sla.advance`): start it when
    a policy applies, count, pause, resume, close targets. Called after every event that may move
    it; the conversation's version is bumped (a live update) only when what is shown changed."""
    if not policies_by_team():  # no team has a policy: nothing to count (and no query)
        return None
    now = now or timezone.now()
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
        if conversation is None:
            return None
        # Locked too: the breach sweep marks rows under this lock, and this save must not undo it.
        row = ConversationSla.objects.select_for_update().filter(conversation=conversation).first()
        policy = policy_for(conversation)
        if row is None:
            if policy is None:
                return None
            row = ConversationSla(conversation=conversation)
        before = _shown(row) if row.pk else None
        sla.advance(
            row,
            state=_state(conversation),
            policy=policy,
            now=now,
            schedule=schedule_for(policy),
            warn_share=sla_warn_share(),
        )
        row.save()
        if _shown(row) != before:
            touch(conversation)
    return row


def on_conversation_event(sender: Any, *, conversation_id: int, **payload: Any) -> None:
    """The receiver of the domain events that move clocks (see desk/hooks.py)."""
    if payload.get("kind") == "note":  # a private note moves no clock
        return
    try:
        sync_sla(conversation_id)
    except Exception:  # a clock must never break the writer's work (it is after commit anyway)
        logger.exception("could not move the SLA clock of conversation %s", conversation_id)


def breach_recipients(conversation: Conversation) -> list[int]:
    """Who hears of a breach: the assignee, and the team's leads — the admins (staff) who are members
    of the conversation's team (Parley has no "team lead" role of its own)."""
    ids = []
    if conversation.assignee_id:
        ids.append(conversation.assignee_id)
    if conversation.team_id:
        leads = Operator.objects.filter(teams=conversation.team_id, is_staff=True, is_active=True)
        ids += [pk for pk in leads.values_list("pk", flat=True) if pk not in ids]
    return ids


def sweep_warnings(*, now: datetime | None = None, limit: int = 200) -> list[int]:
    """Bump the version of conversations whose nearest target just turned amber, once per warning,
    so that their row and thread re-render live (the badge is computed when rendered). The ids."""
    now = now or timezone.now()
    turned = list(
        ConversationSla.objects.filter(soon_at__lte=now, next_due__gt=now)
        .filter(Q(warned_at__isnull=True) | Q(warned_at__lt=F("soon_at")))
        .values_list("pk", "conversation_id", "soon_at")[:limit]
    )
    warned = []
    for pk, conversation_id, soon_at in turned:
        with transaction.atomic():
            if (
                not ConversationSla.objects.filter(pk=pk, soon_at=soon_at)
                .exclude(warned_at=soon_at)
                .update(warned_at=soon_at)
            ):
                continue  # another sweep did it, or the clock moved meanwhile
            conversation = Conversation.objects.filter(pk=conversation_id).first()
            if conversation is not None:
                touch(conversation)
                warned.append(conversation_id)
    return warned


def sweep_breaches(*, now: datetime | None = None, limit: int = 200) -> list[tuple[int, str, str]]:
    """Mark every target past due and not yet met: ``(conversation id, target, event id)`` of each
    breach marked *here*. Finds them with one indexed query (``next_due``); each is claimed with a
    conditional update under the clock's lock, so two schedulers or a re-run mark (and announce)
    a breach once. The assignee and the team's leads are told live; the thread gets an entry."""
    now = now or timezone.now()
    due = list(
        ConversationSla.objects.filter(next_due__lte=now)
        .order_by("next_due")
        .values_list("pk", "conversation_id")[:limit]
    )
    marked: list[tuple[int, str, str]] = []
    for pk, conversation_id in due:
        with transaction.atomic():
            # The conversation first, then its clock: the order sync_sla locks them in (no deadlock).
            conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
            row = ConversationSla.objects.select_for_update(of=("self",)).select_related("policy").filter(pk=pk).first()
            if conversation is None or row is None or not row.running:
                continue
            claimed = []
            for target in sla.active_targets(row):
                target_due = getattr(row, f"{target}_due")
                if target_due is None or target_due > now:
                    continue
                won = ConversationSla.objects.filter(pk=pk, **{f"{target}_breached_at__isnull": True}).update(
                    **{f"{target}_breached_at": now, "breaches": F("breaches") + 1}
                )
                if won:
                    setattr(row, f"{target}_breached_at", now)
                    row.breaches += 1
                    claimed.append(target)
            sla.refresh_dues(row, schedule=schedule_for(row.policy), warn_share=sla_warn_share())
            ConversationSla.objects.filter(pk=pk).update(
                **{f"{t}_due": getattr(row, f"{t}_due") for t in sla.TARGETS},
                next_due=row.next_due,
                soon_at=row.soon_at,
            )
            if not claimed:
                continue
            touch(conversation)
            for target in claimed:
                activity.record_activity(
                    conversation=conversation,
                    action="sla_breached",
                    by=None,
                    data={"target": target, "target_name": str(TARGET_NAMES[target])},
                )
                marked.append((conversation.pk, target, f"sla.breached:{conversation.pk}:{target}:{now.isoformat()}"))
            for operator_id in breach_recipients(conversation):
                transaction.on_commit(partial(publish.conversation_alert, conversation.pk, operator_id, "sla_breached"))
    return marked


# -- policies (staff) --


def clean_policy(policy: SlaPolicy) -> SlaPolicy:
    if not any((policy.first_response_minutes, policy.next_response_minutes, policy.resolution_minutes)):
        raise ValidationError(_("Give at least one target."))
    policy.full_clean()  # lengths, choices and the unique name, as a readable error
    return policy


def _save_policy(policy: SlaPolicy) -> SlaPolicy:
    clean_policy(policy)
    try:
        with transaction.atomic():
            policy.save()
    except IntegrityError:
        raise ValidationError({"name": _("This team has an SLA policy with this name already.")}) from None
    transaction.on_commit(forget_policies)
    forget_policies()
    return policy


def _policy_details(policy: SlaPolicy) -> dict[str, Any]:
    return {
        "team": policy.team_id,
        "priority": policy.priority,
        "label": policy.label_id,
        "first_response": policy.first_response_minutes,
        "next_response": policy.next_response_minutes,
        "resolution": policy.resolution_minutes,
        "business_hours": policy.business_hours,
        "enabled": policy.enabled,
    }


POLICY_FIELDS = SlaPolicy.EDITABLE


@transaction.atomic
def save_policy(*, policy: SlaPolicy, by: Operator) -> SlaPolicy:
    """Create or change a policy (staff); in the audit log. Clocks already running keep their time
    spent and take the new targets at their next move."""
    if not by.is_staff:
        raise PermissionDenied(_("Only admins manage SLA policies."))
    created = policy.pk is None
    if created:
        policy.created_by = by
    policy.name = policy.name.strip()
    _save_policy(policy)
    audit.record(action="created" if created else "changed", actor=by, target=policy, details=_policy_details(policy))
    return policy


@transaction.atomic
def delete_policy(*, policy: SlaPolicy, by: Operator) -> None:
    if not by.is_staff:
        raise PermissionDenied(_("Only admins manage SLA policies."))
    audit.record(action="deleted", actor=by, target=policy, details=_policy_details(policy))
    policy.delete()
    transaction.on_commit(forget_policies)


def sla_warn_share() -> float:
    """The share of a target left under which it shows amber (``PARLEY_SLA_WARN_PERCENT``)."""
    return float(getattr(settings, "PARLEY_SLA_WARN_PERCENT", 20)) / 100
