"""What the API answers and accepts (pydantic models through django-ninja; they make the OpenAPI
description). Output schemas name fields explicitly: a new model field never leaks by itself,
and a channel's settings and secrets are never among them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from ninja import Field, Schema
from pydantic import BaseModel
from pydantic import Field as PydanticField

from customers.models import Customer, CustomerNote, Identity
from inbox.models import Attachment, Channel, Conversation, Message, Operator, SavedReply, Team

MAX_TEXT = 20_000


class Out(BaseModel):
    """What the API answers. Plain pydantic models, built once from the rows (``X.of(row)``): a
    model instance is not validated again when ninja serialises it (ninja's ``Schema`` would run
    its ORM-reading validator over every nested object, the largest cost of a list page)."""


class Me(Out):
    """Who a token acts as, and what it sees."""

    token: str
    scope: Literal["operator", "integration"]
    operator_id: int
    username: str
    is_staff: bool
    team_ids: list[int]


class TeamOut(Out):
    id: int
    name: str
    timezone: str

    @staticmethod
    def of(team: Team) -> TeamOut:
        return TeamOut(id=team.pk, name=team.name, timezone=team.timezone)


class OperatorOut(Out):
    id: int
    username: str
    name: str
    presence: str
    is_staff: bool
    team_ids: list[int]

    @staticmethod
    def of(operator: Operator) -> OperatorOut:
        return OperatorOut(
            id=operator.pk,
            username=operator.username,
            name=operator.label,
            presence=operator.presence,
            is_staff=operator.is_staff,
            team_ids=sorted(team.pk for team in operator.teams.all()),
        )


class ChannelOut(Out):
    """A channel as integrations need it: never its settings, secrets or webhook key."""

    id: int
    name: str
    kind: str
    medium: str
    team_id: int | None
    is_active: bool
    bot_enabled: bool

    @staticmethod
    def of(channel: Channel) -> ChannelOut:
        return ChannelOut(
            id=channel.pk,
            name=channel.name,
            kind=channel.kind,
            medium=channel.medium,
            team_id=channel.team_id,
            is_active=channel.is_active,
            bot_enabled=channel.bot_enabled,
        )


class IdentityOut(Out):
    kind: str
    value: str
    display: str
    verified: bool

    @staticmethod
    def of(identity: Identity) -> IdentityOut:
        return IdentityOut(
            kind=identity.kind, value=identity.value, display=identity.display, verified=identity.verified
        )


@dataclass(frozen=True)
class AttributeScope:
    """Which attribute keys a reader sees: the definitions of their teams and global ones
    (``visible``), and free-form keys (not in ``defined``); another team's typed attributes stay
    hidden, as on the profile (``inbox.selectors.customers.attribute_rows``)."""

    visible: frozenset[str]
    defined: frozenset[str]

    def shows(self, key: str) -> bool:
        return key in self.visible or key not in self.defined


class CustomerOut(Out):
    id: int
    external_id: str = PydanticField(description="The CRM's key ('' when none).")
    name: str
    language: str
    labels: list[Any]
    is_vip: bool
    attributes: dict[str, Any] = PydanticField(
        description="Typed attributes of the token's teams and global ones, and free-form ones."
    )
    identities: list[IdentityOut]
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def of(customer: Customer, scope: AttributeScope) -> CustomerOut:
        return CustomerOut(
            id=customer.pk,
            external_id=customer.external_id,
            name=customer.name,
            language=customer.language,
            labels=list(customer.labels or []),
            is_vip=customer.is_vip,
            attributes={k: v for k, v in (customer.attributes or {}).items() if scope.shows(k)},
            identities=[IdentityOut.of(i) for i in customer.identities.all()],
            created_at=customer.created_at,
            updated_at=customer.updated_at,
        )


class CustomerPatch(Schema):
    """Only the fields given change. In ``attributes``, a key set to null (or '') is removed; the
    keys not sent stay as they are."""

    name: str | None = Field(None, max_length=200)
    language: str | None = Field(None, max_length=16)
    labels: list[str] | None = Field(None, max_length=50)
    is_vip: bool | None = None
    external_id: str | None = Field(None, max_length=255, description="The CRM's key; '' removes it.")
    attributes: dict[str, Any] | None = Field(None, max_length=100)


class UpsertIn(Schema):
    """A CRM's contact. The customer is found by external id, else email, else phone (never by a
    name, never merging two); created when none matches."""

    email: str = Field("", max_length=320)
    phone: str = Field("", max_length=64)
    name: str = Field("", max_length=200)
    language: str = Field("", max_length=16)
    attributes: dict[str, Any] = Field(default_factory=dict, max_length=100)


class UpsertByKeysIn(UpsertIn):
    external_id: str = Field("", max_length=255)


class NoteOut(Out):
    id: int
    text: str
    author_id: int | None
    created_at: datetime

    @staticmethod
    def of(note: CustomerNote) -> NoteOut:
        return NoteOut(id=note.pk, text=note.text, author_id=note.author_id, created_at=note.created_at)


class NoteIn(Schema):
    text: str = Field(..., min_length=1, max_length=MAX_TEXT)


class CustomerRef(Out):
    id: int
    name: str


class ConversationOut(Out):
    id: int
    customer: CustomerRef
    team_id: int | None
    status: str
    handler: str
    assignee_id: int | None
    priority: int
    labels: list[Any]
    subject: str
    last_channel_id: int | None
    last_message_at: datetime
    last_message_preview: str
    waiting_since: datetime | None
    snoozed_until: datetime | None
    resolved_at: datetime | None
    created_at: datetime
    version: int

    # What :meth:`of` reads, for ``QuerySet.only`` in lists: a customer's other fields (its JSON
    # attributes, notes, dates) cost decoding and are not shown.
    LOADS: ClassVar[tuple[str, ...]] = (
        *("customer__name", "customer__contact_kind", "customer__contact", "team_id", "status", "handler"),
        *("assignee_id", "priority", "labels", "subject", "last_channel_id", "last_message_at"),
        *("last_message_preview", "waiting_since", "snoozed_until", "resolved_at", "created_at", "version"),
    )

    @staticmethod
    def of(conversation: Conversation) -> ConversationOut:
        return ConversationOut(
            id=conversation.pk,
            customer=CustomerRef(id=conversation.customer_id, name=conversation.customer.display_name),
            team_id=conversation.team_id,
            status=conversation.status,
            handler=conversation.handler,
            assignee_id=conversation.assignee_id,
            priority=conversation.priority,
            labels=list(conversation.labels or []),
            subject=conversation.subject,
            last_channel_id=conversation.last_channel_id,
            last_message_at=conversation.last_message_at,
            last_message_preview=conversation.last_message_preview,
            waiting_since=conversation.waiting_since,
            snoozed_until=conversation.snoozed_until,
            resolved_at=conversation.resolved_at,
            created_at=conversation.created_at,
            version=conversation.version,
        )


class ConversationPage(Out):
    items: list[ConversationOut]
    next_cursor: str | None


class AttachmentOut(Out):
    id: int
    filename: str
    content_type: str
    size: int

    @staticmethod
    def of(attachment: Attachment) -> AttachmentOut:
        return AttachmentOut(
            id=attachment.pk, filename=attachment.filename, content_type=attachment.content_type, size=attachment.size
        )


class MessageOut(Out):
    id: int
    public_id: UUID
    conversation_id: int
    team_id: int | None
    kind: str
    direction: str
    sender: str
    author_id: int | None
    channel_id: int | None
    text: str
    status: str
    status_reason: str
    created_at: datetime
    attachments: list[AttachmentOut]

    @staticmethod
    def of(message: Message, *, attachments: list[Attachment] | None = None) -> MessageOut:
        """``attachments``: given when known (a message just written has none), to spare a query."""
        return MessageOut(
            id=message.pk,
            public_id=message.public_id,
            conversation_id=message.conversation_id,
            team_id=message.conversation.team_id,
            kind=message.kind,
            direction=message.direction,
            sender=message.sender,
            author_id=message.author_id,
            channel_id=message.channel_id,
            text=message.text,
            status=message.status,
            status_reason=message.status_reason,
            created_at=message.created_at,
            attachments=[
                AttachmentOut.of(a) for a in (message.attachments.all() if attachments is None else attachments)
            ],
        )


class MessagePage(Out):
    """A page of the customer's one timeline, oldest first; ``older_cursor`` asks for the page before."""

    items: list[MessageOut]
    older_cursor: str | None


class MessageIn(Schema):
    """A reply to the customer (``type: reply``, on ``channel_id`` or the channel they last wrote on)
    or a private note (``type: note``), through the same outbox as the inbox's reply box."""

    type: Literal["reply", "note"] = "reply"
    text: str = Field(..., min_length=1, max_length=MAX_TEXT)
    channel_id: int | None = Field(None, ge=1, le=2**63 - 1)


class AssignIn(Schema):
    """``operator_id`` to assign (a member of the conversation's team), ``null`` to unassign."""

    operator_id: int | None = Field(..., ge=1, le=2**63 - 1)


class StatusIn(Schema):
    status: Literal["open", "resolved", "snoozed"]
    snoozed_until: datetime | None = Field(None, description="Required with status=snoozed: a time in the future.")


class PriorityIn(Schema):
    priority: int = Field(..., ge=0, le=3, description="0 low, 1 normal, 2 high, 3 urgent.")


class SavedReplyOut(Out):
    id: int
    title: str
    text: str
    team_id: int | None
    updated_at: datetime

    @staticmethod
    def of(saved_reply: SavedReply) -> SavedReplyOut:
        return SavedReplyOut(
            id=saved_reply.pk,
            title=saved_reply.title,
            text=saved_reply.text,
            team_id=saved_reply.team_id,
            updated_at=saved_reply.updated_at,
        )


class ArticleOut(Out):
    id: int
    title: str
    answer: str
    language: str
    tags: list[str]
    channel_ids: list[int]
    is_active: bool
    updated_at: datetime


class DurationsOut(Out):
    count: int
    median_seconds: float | None
    p90_seconds: float | None


class ReportRowOut(Out):
    channel_id: int | None
    name: str
    medium: str
    team: str
    customers: int
    customer_share: float | None
    inbound: int
    outbound_people: int
    outbound_bot: int
    started: int
    bot_answers: int
    bot_questions: int
    bot_handoffs: int
    handoff_share: float | None
    first_response: DurationsOut
    resolved: int
    resolution: DurationsOut


class MediumPairOut(Out):
    media: list[str]
    customers: int


class ChannelReportOut(Out):
    since: datetime
    until: datetime
    team_id: int | None
    rows: list[ReportRowOut]
    total: ReportRowOut
    multichannel: int
    multichannel_share: float | None
    pairs: list[MediumPairOut]
