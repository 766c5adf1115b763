"""Labels (the manager's tools, ``desk``): the labels staff defined, and putting them on and taking
them off a conversation through the same services as the thread's label chips."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema

from api.auth import operator_of
from api.endpoints.conversations import conversation_or_404, conversation_out
from api.journal import record_write
from api.problems import Problem, declared
from api.schemas import ConversationOut, Out
from audit.models import Entry
from common.db import MAX_ID
from desk import selectors, services
from desk.models import Label

router = Router(tags=["labels"])


class LabelOut(Out):
    id: int
    name: str
    colour: str
    description: str

    @staticmethod
    def of(label: Label) -> LabelOut:
        return LabelOut(id=label.pk, name=label.name, colour=label.colour, description=label.description)


class LabelIn(Schema):
    label_id: int = Field(..., ge=1, le=MAX_ID)


@router.get("/labels", response={200: list[LabelOut]} | declared())
def list_labels(request: HttpRequest) -> list[LabelOut]:
    """Every label (labels are the whole desk's, not a team's)."""
    return [LabelOut.of(label) for label in selectors.all_labels()]


@router.post("/conversations/{conversation_id}/labels", response={200: ConversationOut} | declared())
def add_label(request: HttpRequest, conversation_id: int, payload: LabelIn) -> ConversationOut:
    """Put a label on the conversation (already there: nothing changes). At most 20 a conversation."""
    conversation = conversation_or_404(request, conversation_id)
    label = selectors.label_or_none(payload.label_id)
    if label is None:
        raise Problem(
            422,
            _("No such label."),
            errors=[{"field": "body.label_id", "message": _("No such label."), "code": "invalid"}],
        )
    with transaction.atomic():
        if services.add_label(conversation=conversation, label=label, by=operator_of(request)):
            record_write(request, action=Entry.Action.CHANGED, target=conversation, details={"label_added": label.name})
    return conversation_out(request, conversation_id)


@router.delete("/conversations/{conversation_id}/labels/{label_id}", response={200: ConversationOut} | declared())
def remove_label(request: HttpRequest, conversation_id: int, label_id: int) -> ConversationOut:
    """Take a label off the conversation (not there: nothing changes)."""
    conversation = conversation_or_404(request, conversation_id)
    label = selectors.label_or_none(label_id) if 1 <= label_id <= MAX_ID else None
    if label is None:
        raise Label.DoesNotExist
    with transaction.atomic():
        if services.remove_label(conversation=conversation, label=label, by=operator_of(request)):
            record_write(
                request, action=Entry.Action.CHANGED, target=conversation, details={"label_removed": label.name}
            )
    return conversation_out(request, conversation_id)
