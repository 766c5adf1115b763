"""Conversations: the inbox's list (same filters, keyset pages), one conversation, its thread,
replies and notes, assignment, status and priority. Every lookup goes through the inbox's
selectors, so a token sees exactly what its operator sees in the UI (another team's: 404)."""

from __future__ import annotations

from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Header, Query, Router, Schema, Status

from api import idempotency
from api.auth import operator_of, token_of
from api.journal import record_write
from api.problems import Problem, declared, reject_unknown_query
from api.schemas import (
    AssignIn,
    ConversationOut,
    ConversationPage,
    MessageIn,
    MessageOut,
    MessagePage,
    PriorityIn,
    StatusIn,
)
from audit.models import Entry
from common.db import MAX_ID
from customers.crm import clean_value
from customers.models import AttributeDefinition
from inbox.models import Channel, Conversation, Operator
from inbox.realtime import publish
from inbox.selectors.conversations import conversation_for, inbox_page, thread_page
from inbox.services import conversations, outbound

router = Router(tags=["conversations"])
# The keyset cursors of inbox.selectors.cursors (opaque to clients); any string of this form is a
# valid position (an empty page at worst), so a client can only get a 422 for a mangled one.
CURSOR = r"^[0-9]{1,16}\.[0-9]{1,18}$"


class ConversationFilters(Schema):
    tab: Literal["mine", "unassigned", "bot", "all"] = "all"
    team: int | None = Field(None, ge=1, le=MAX_ID, description="Only this team's conversations.")
    channel: int | None = Field(None, ge=1, le=MAX_ID, description="Only those whose customer last wrote here.")
    status: Literal["open", "snoozed", "resolved"] | None = None
    label: int | None = Field(None, ge=1, le=MAX_ID, description="Only conversations with this label.")
    attr: str | None = Field(None, max_length=100, description="A customer attribute's key, with ``value``.")
    value: str = Field("", max_length=1000, description="What the attribute equals (typed by its definition).")
    cursor: str | None = Field(None, pattern=CURSOR, description="``next_cursor`` of the previous page.")
    limit: int = Field(25, ge=1, le=100)


class ThreadQuery(Schema):
    cursor: str | None = Field(None, pattern=CURSOR, description="``older_cursor`` of the previous page.")
    limit: int = Field(50, ge=1, le=200)


def _attribute_filter(filters: ConversationFilters) -> tuple[str, Any] | None:
    """``(key, value)`` with the value typed as the attribute's definition says (the inbox's rule)."""
    key = (filters.attr or "").strip()
    if not key:
        return None
    definition = AttributeDefinition.objects.filter(key=key).first()
    try:
        return key, clean_value(definition, filters.value) if definition else filters.value.strip()
    except ValidationError as exc:
        raise Problem(
            422,
            _("This value does not fit the attribute."),
            errors=[{"field": "query.value", "message": m, "code": "invalid"} for m in exc.messages],
        ) from None


def conversation_or_404(request: HttpRequest, conversation_id: int) -> Conversation:
    """The conversation if the token may see it; 404 otherwise (``DoesNotExist`` is answered 404)."""
    if not 1 <= conversation_id <= MAX_ID:
        raise Conversation.DoesNotExist
    return conversation_for(operator=operator_of(request), conversation_id=conversation_id)


def conversation_out(request: HttpRequest, conversation_id: int) -> ConversationOut:
    """The conversation as it is now (after a change), as the token sees it."""
    return ConversationOut.of(conversation_or_404(request, conversation_id))


@router.get("/conversations", response={200: ConversationPage} | declared(), summary="List conversations")
def list_conversations(request: HttpRequest, filters: Query[ConversationFilters]) -> ConversationPage:
    """Newest activity first, the inbox's tabs and filters. Pass ``next_cursor`` back as ``cursor``."""
    reject_unknown_query(request, ConversationFilters)
    page = inbox_page(
        attribute=_attribute_filter(filters),
        operator=operator_of(request),
        tab=filters.tab,
        team_id=filters.team,
        channel_id=filters.channel,
        status=filters.status,
        extra={"label": filters.label} if filters.label else None,
        cursor=filters.cursor or None,
        limit=filters.limit,
        related=("customer",),  # ConversationOut names the customer; the rest are ids
        only=ConversationOut.LOADS,
    )
    return ConversationPage(items=[ConversationOut.of(c) for c in page.items], next_cursor=page.next_cursor)


@router.get("/conversations/{conversation_id}", response={200: ConversationOut} | declared())
def get_conversation(request: HttpRequest, conversation_id: int) -> ConversationOut:
    return ConversationOut.of(conversation_or_404(request, conversation_id))


@router.get("/conversations/{conversation_id}/messages", response={200: MessagePage} | declared())
def list_messages(request: HttpRequest, conversation_id: int, query: Query[ThreadQuery]) -> MessagePage:
    """The customer's one timeline (every conversation and channel) as the thread shows it: another
    team's conversations show the customer's messages and our replies, never their notes."""
    reject_unknown_query(request, ThreadQuery)
    conversation_or_404(request, conversation_id)
    thread = thread_page(
        operator=operator_of(request), conversation_id=conversation_id, before=query.cursor or None, limit=query.limit
    )
    return MessagePage(items=[MessageOut.of(m) for m in thread.messages], older_cursor=thread.older_cursor)


def _reply_channel(conversation: Conversation, channel_id: int | None) -> Channel | None:
    if channel_id is None:
        return None
    channels = {c.pk: c for c in outbound.reachable_channels(customer=conversation.customer)}
    if channel_id not in channels:
        raise Problem(
            422,
            _("This customer cannot be reached on that channel."),
            errors=[
                {
                    "field": "body.channel_id",
                    "message": _("Not a channel this customer can be reached on."),
                    "code": "invalid",
                }
            ],
        )
    return channels[channel_id]


def _send(request: HttpRequest, conversation: Conversation, payload: MessageIn) -> tuple[int, object]:
    operator = operator_of(request)
    if payload.type == "note":
        message = outbound.add_note(conversation=conversation, text=payload.text, by=operator)
    else:
        channel = _reply_channel(conversation, payload.channel_id)
        message = outbound.reply(
            conversation=conversation,
            text=payload.text,
            by=operator,
            channel=channel,
        )
    record_write(
        request,
        action=Entry.Action.CREATED,
        target=message,
        target_label=f"{payload.type} in conversation #{conversation.pk}",
        details={"conversation": conversation.pk, "type": payload.type},
    )
    # The message as written (nothing re-read): the API sends no attachments.
    return 201, MessageOut.of(message, attachments=[]).model_dump(mode="json")


@router.post("/conversations/{conversation_id}/messages", response={201: MessageOut} | declared())
def post_message(
    request: HttpRequest,
    response: HttpResponse,
    conversation_id: int,
    payload: MessageIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=255),  # type: ignore[type-arg]
) -> Status[object]:
    """Reply to the customer or add a private note, through the inbox's outbox: the reply is stored
    ``queued`` and delivered by the worker, exactly as from the reply box. Send an
    ``Idempotency-Key`` (a UUID) and a retry returns the first answer instead of sending again."""
    conversation = conversation_or_404(request, conversation_id)
    # One broadcast after the commit for the new message and the conversation it moved, not two
    # (each reads its rows back and goes to Redis): a few milliseconds of every reply.
    with publish.batched():
        status, body, replayed = idempotency.once(
            request=request,
            token=token_of(request),
            key=idempotency_key,
            work=lambda: _send(request, conversation, payload),
        )
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return Status(status, body)


def _changed(request: HttpRequest, conversation: Conversation, what: str, **details: object) -> ConversationOut:
    record_write(
        request,
        action=Entry.Action.CHANGED,
        target=conversation,
        details={"fields": [what], **details},
    )
    return conversation_out(request, conversation.pk)


@router.post("/conversations/{conversation_id}/assignment", response={200: ConversationOut} | declared())
def assign(request: HttpRequest, conversation_id: int, payload: AssignIn) -> ConversationOut:
    """Assign to an operator of the conversation's team, or ``{"operator_id": null}`` to unassign."""
    conversation = conversation_or_404(request, conversation_id)
    by = operator_of(request)
    with transaction.atomic():
        return _assign(request, conversation, payload, by)


def _assign(request: HttpRequest, conversation: Conversation, payload: AssignIn, by: Operator) -> ConversationOut:
    if payload.operator_id is None:
        conversations.unassign_conversation(conversation=conversation, by=by)
        return _changed(request, conversation, "assignee", assignee=None)
    assignee = Operator.objects.filter(pk=payload.operator_id, is_active=True).first()
    if assignee is None or not conversations.can_see(assignee, conversation):
        raise Problem(
            422,
            _("No such operator in this conversation's team."),
            errors=[{"field": "body.operator_id", "message": _("Not an operator of this team."), "code": "invalid"}],
        )
    conversations.assign_conversation(conversation=conversation, operator=assignee, by=by)
    return _changed(request, conversation, "assignee", assignee=assignee.pk)


@router.post("/conversations/{conversation_id}/status", response={200: ConversationOut} | declared())
def set_status(request: HttpRequest, conversation_id: int, payload: StatusIn) -> ConversationOut:
    """Resolve, reopen, or snooze until ``snoozed_until``. A conflict (reopening while the customer
    has another open conversation, snoozing a resolved one) is a 409."""
    conversation = conversation_or_404(request, conversation_id)
    with transaction.atomic():
        return _set_status(request, conversation, payload)


def _set_status(request: HttpRequest, conversation: Conversation, payload: StatusIn) -> ConversationOut:
    by = operator_of(request)
    if payload.status == "resolved":
        conversations.resolve_conversation(conversation=conversation, by=by)
    elif payload.status == "open":
        conversations.reopen_conversation(conversation=conversation, by=by)
    else:
        if payload.snoozed_until is None:
            raise Problem(
                422,
                _("Say until when to snooze."),
                errors=[{"field": "body.snoozed_until", "message": _("Required to snooze."), "code": "missing"}],
            )
        conversations.snooze_conversation(conversation=conversation, until=payload.snoozed_until, by=by)
    return _changed(request, conversation, "status", status=payload.status)


@router.post("/conversations/{conversation_id}/priority", response={200: ConversationOut} | declared())
def set_priority(request: HttpRequest, conversation_id: int, payload: PriorityIn) -> ConversationOut:
    conversation = conversation_or_404(request, conversation_id)
    with transaction.atomic():
        conversations.set_priority(conversation=conversation, priority=payload.priority, by=operator_of(request))
        return _changed(request, conversation, "priority", priority=payload.priority)
