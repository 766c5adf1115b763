"""The writers of the manager's tools. Labels: staff define them; operators put them on the
conversations they may see. Macros: staff define them; operators run them on a conversation, every
step through the inbox's own services, all or nothing. Every change to a conversation bumps its version and is broadcast
(``inbox.services.conversations.touch``) and leaves an activity entry in the thread."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from audit import services as audit
from desk.models import ConversationLabel, Label, Macro
from inbox import signals
from inbox.models import Conversation, Operator, SavedReply, Team
from inbox.services import activity, conversations, outbound, replies
from inbox.services.conversations import require_access, touch

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
