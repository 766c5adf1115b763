"""The writers of the manager's tools. Labels: staff define them; operators put them on the
conversations they may see. Every change to a conversation bumps its version and is broadcast
(``inbox.services.conversations.touch``) and leaves an activity entry in the thread."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from audit import services as audit
from desk.models import ConversationLabel, Label
from inbox.models import Conversation, Operator
from inbox.services import activity
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
