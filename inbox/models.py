from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from common.choices import ChoiceLabels
from customers.crm import check_link_template
from customers.models import Customer


class Team(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    timezone = models.CharField(_("time zone"), max_length=64, default="UTC")
    # Where this team's CRM shows a customer: an https URL with ``{external_id}`` in it.
    crm_link_template = models.CharField(
        _("CRM link"),
        max_length=500,
        blank=True,
        help_text=_("For example https://crm.example.com/contacts/{external_id}"),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            self.crm_link_template = check_link_template(self.crm_link_template)
        except ValidationError as exc:
            raise ValidationError({"crm_link_template": exc.messages}) from exc


class Operator(ChoiceLabels, AbstractUser):
    """A person who works the inbox. Staff (admins) see every team's conversations."""

    class Presence(models.TextChoices):
        ONLINE = "online", _("Online")
        AWAY = "away", _("Away")
        OFFLINE = "offline", _("Offline")

    teams = models.ManyToManyField(Team, blank=True, related_name="operators", verbose_name=_("teams"))
    capacity = models.PositiveSmallIntegerField(
        _("capacity"), default=5, help_text=_("How many open conversations may be assigned at once.")
    )
    presence = models.CharField(_("presence"), max_length=8, choices=Presence.choices, default=Presence.OFFLINE)
    presence_changed_at = models.DateTimeField(null=True, blank=True)
    display_name = models.CharField(_("display name"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("operator")
        verbose_name_plural = _("operators")

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    @property
    def label(self) -> str:
        return str(self)

    @cached_property
    def team_ids(self) -> list[int]:
        """The operator's team ids, read once per instance (``request.user`` lives one request)."""
        return list(self.teams.values_list("pk", flat=True))


def _channel_key() -> str:
    return secrets.token_urlsafe(18)


class ChannelQuerySet(models.QuerySet["Channel"]):
    def visible_to(self, operator: Operator) -> ChannelQuerySet:
        """The channels of the operator's teams (every channel for staff), as conversations are."""
        if operator.is_staff:
            return self
        return self.filter(team_id__in=operator.team_ids)


class Channel(ChoiceLabels, models.Model):
    """One configured connector instance: a Twilio number, a mailbox, a simulated SMS line..."""

    class Medium(models.TextChoices):
        SMS = "sms", _("SMS")
        WHATSAPP = "whatsapp", _("WhatsApp")
        TELEGRAM = "telegram", _("Telegram")
        VIBER = "viber", _("Viber")
        MESSENGER = "messenger", _("Messenger")
        INSTAGRAM = "instagram", _("Instagram")
        EMAIL = "email", _("Email")
        VOICE = "voice", _("Voice")
        WEBCHAT = "webchat", _("Website chat")

    kind = models.CharField(_("connector"), max_length=32)
    medium = models.CharField(_("medium"), max_length=16, choices=Medium.choices)
    name = models.CharField(_("name"), max_length=100)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="channels")
    # The secret part of the channel's webhook URLs.
    key = models.CharField(max_length=32, unique=True, default=_channel_key, editable=False)
    settings: models.JSONField[dict[str, Any]] = models.JSONField(_("settings"), default=dict, blank=True)
    # Connector-owned bookkeeping (cursors, mailbox UIDs); never edited by people.
    state: models.JSONField[dict[str, Any]] = models.JSONField(default=dict, blank=True, editable=False)
    bot_enabled = models.BooleanField(_("bot answers first"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        return self.name


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def open(self) -> ConversationQuerySet:
        return self.exclude(status=Conversation.Status.RESOLVED)

    def visible_to(self, operator: Operator) -> ConversationQuerySet:
        if operator.is_staff:
            return self
        # Literal team ids (read once per operator instance), not a subquery: the planner then
        # estimates the filter from column statistics and walks a tab's partial index in order
        # instead of sorting every match.
        return self.filter(team_id__in=operator.team_ids)


class Conversation(ChoiceLabels, models.Model):
    """A customer's unit of work. A customer has at most one conversation that is not resolved."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        SNOOZED = "snoozed", _("Snoozed")
        RESOLVED = "resolved", _("Resolved")

    class Handler(models.TextChoices):
        BOT = "bot", _("Bot")
        HUMAN = "human", _("Team")

    class Priority(models.IntegerChoices):
        LOW = 0, _("Low")
        NORMAL = 1, _("Normal")
        HIGH = 2, _("High")
        URGENT = 3, _("Urgent")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="conversations")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    handler = models.CharField(max_length=8, choices=Handler.choices, default=Handler.HUMAN)
    assignee = models.ForeignKey(
        Operator, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_conversations"
    )
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    labels = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    # The channel the customer last wrote on: replies go there unless the operator picks another.
    last_channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_message_at = models.DateTimeField(db_index=False)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_message_preview = models.CharField(max_length=160, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped by every change, so clients can tell a stale fragment from a fresh one.
    version = models.PositiveIntegerField(default=0)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=~Q(status="resolved"),
                name="conversation_one_active_per_customer",
            )
        ]
        indexes = [
            # Keyset pagination of the inbox, newest activity first, for each tab.
            models.Index(fields=["-last_message_at", "-id"], name="conv_activity"),
            models.Index(fields=["team", "status", "-last_message_at", "-id"], name="conv_team_status_activity"),
            models.Index(fields=["assignee", "status", "-last_message_at", "-id"], name="conv_assignee_activity"),
            models.Index(fields=["status", "snoozed_until"], name="conv_snoozed"),
            models.Index(fields=["customer", "-created_at"], name="conv_customer"),
            # Reports (reports.selectors): conversations started, and resolved, in a period.
            models.Index(fields=["created_at"], name="conv_started"),
            models.Index(fields=["resolved_at"], condition=Q(status="resolved"), name="conv_resolved"),
            # The tabs' own slices (conditions exactly as in inbox.selectors.tab_filter), so a tab's
            # first page is an ordered index scan that stops after one page, and counts read
            # only the unresolved work, from the index alone.
            models.Index(
                fields=["assignee", "-last_message_at", "-id"],
                condition=Q(status__in=["open", "snoozed"]),
                name="conv_mine",
            ),
            models.Index(
                fields=["-last_message_at", "-id"],
                condition=Q(handler="human", assignee__isnull=True, status="open"),
                name="conv_unassigned",
            ),
            models.Index(
                fields=["-last_message_at", "-id"],
                condition=Q(handler="bot", status__in=["open", "snoozed"]),
                name="conv_bot",
            ),
            models.Index(
                fields=["team", "assignee", "handler", "status"],
                condition=Q(status__in=["open", "snoozed"]),
                name="conv_active_counts",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.customer}"


class Message(ChoiceLabels, models.Model):
    """Everything in a thread: customer and operator messages, bot answers, private notes, activity."""

    class Kind(models.TextChoices):
        MESSAGE = "message", _("Message")
        NOTE = "note", _("Private note")
        ACTIVITY = "activity", _("Activity")
        CALL = "call", _("Call")

    class Direction(models.TextChoices):
        INBOUND = "in", _("Inbound")
        OUTBOUND = "out", _("Outbound")
        INTERNAL = "internal", _("Internal")

    class Sender(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
        OPERATOR = "operator", _("Operator")
        BOT = "bot", _("Bot")
        SYSTEM = "system", _("System")

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")
        FAILED = "failed", _("Failed")
        # A reply an operator wrote to go out later ("send later"): released by the scheduler at
        # ``send_at`` (inbox.services.outbound.release_scheduled), or cancelled.
        SCHEDULED = "scheduled", _("Scheduled")
        CANCELLED = "cancelled", _("Cancelled")
        NONE = "", _("—")

    # Outbound messages that have not left and may never: a scheduled reply, or one cancelled before
    # its time. Reports, the widget's history and collision control leave them out.
    NOT_SENT = ("scheduled", "cancelled")

    # Delivery status only moves forward along this rank; ``failed`` ends any state before delivery.
    STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # Denormalised from the conversation so the customer's one timeline is a single index range.
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="messages")
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="messages")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MESSAGE)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    sender = models.CharField(max_length=8, choices=Sender.choices)
    author = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField(blank=True)
    html = models.TextField(blank=True, help_text="Sanitised HTML (nh3), when the channel carries HTML.")
    # The address the customer wrote from, or we sent to, on ``channel``.
    address = models.CharField(max_length=320, blank=True)
    provider_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, blank=True)
    status_reason = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    metadata: models.JSONField[dict[str, Any]] = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=False)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # When a scheduled reply is to go out (status ``scheduled``).
    send_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "provider_id"],
                condition=~Q(provider_id=""),
                name="message_unique_provider_id",
            )
        ]
        indexes = [
            models.Index(fields=["customer", "-created_at", "-id"], name="msg_customer_timeline"),
            models.Index(fields=["conversation", "-created_at", "-id"], name="msg_conversation_timeline"),
            models.Index(fields=["status", "status_changed_at"], name="msg_outbox"),
            # The scheduler's due scheduled replies: only those rows, by time.
            models.Index(fields=["send_at"], condition=Q(status="scheduled"), name="msg_scheduled"),
            # Reports (reports.selectors): a channel's messages in a period.
            models.Index(fields=["channel", "created_at"], name="msg_channel_period"),
            # Search (inbox.selectors.search) has one more on PostgreSQL, "msg_text_search": GIN over
            # to_tsvector('simple', text), built by migration 0005 and left out of here because
            # SQLite cannot build it.
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.text[:40]}"

    @property
    def is_outbound(self) -> bool:
        return self.direction == self.Direction.OUTBOUND

    @property
    def details(self) -> TemplateMetadata:
        """``metadata`` as templates read it (``message.details.album``): see :class:`TemplateMetadata`."""
        return TemplateMetadata(self.metadata or {})


class TemplateMetadata(dict[str, Any]):
    """A message's metadata for templates: a key it lacks reads as None, at a dictionary's cost.

    Django's template engine pays for a missing key with three exceptions and a ``dir()``
    (about 30 µs); a thread page asks a few hundred keys its messages do not have (album,
    quoted_html, subject...), about 15 ms of a 90 ms page (bench.inbox, 1M messages).
    """

    def __missing__(self, key: str) -> None:
        return None

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        return TemplateMetadata(value) if type(value) is dict else value


class Attachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to="attachments/%Y/%m/")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=127)
    size = models.PositiveBigIntegerField(default=0)
    content_id = models.CharField(max_length=255, blank=True, help_text="For inline (cid:) images in email.")
    inline = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.filename


class InboundEvent(models.Model):
    """A raw provider request, stored before anything else so that nothing is ever lost."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed")

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="inbound_events")
    endpoint = models.CharField(max_length=32, default="inbound")
    dedupe_key = models.CharField(max_length=255)
    body = models.BinaryField()
    headers: models.JSONField[dict[str, str]] = models.JSONField(default=dict)
    content_type = models.CharField(max_length=127, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("inbound event")
        verbose_name_plural = _("inbound events")
        constraints = [models.UniqueConstraint(fields=["channel", "dedupe_key"], name="inbound_event_unique")]
        indexes = [models.Index(fields=["status", "received_at"], name="inbound_status")]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.dedupe_key}"


class OptOut(models.Model):
    """A customer asked not to be contacted on a channel (SMS STOP and the like)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="opt_outs")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="opt_outs")
    created_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "customer"], name="optout_unique")]

    def __str__(self) -> str:
        return f"{self.customer_id} opted out of {self.channel_id}"


class SavedReplyQuerySet(models.QuerySet["SavedReply"]):
    def visible_to(self, operator: Operator) -> SavedReplyQuerySet:
        """Everyone's (team-less) saved replies and those of the operator's teams; every one for staff."""
        if operator.is_staff:
            return self
        return self.filter(Q(team__isnull=True) | Q(team_id__in=operator.team_ids))


class SavedReply(models.Model):
    """A ready answer ("macro") an operator picks into the reply box, adjusts and sends.

    The text may hold placeholders (``{customer_first_name}``...) filled in for the conversation
    by :func:`inbox.services.replies.render_for`. A saved reply without a team is everyone's.
    """

    title = models.CharField(_("title"), max_length=100)
    text = models.TextField(_("text"), max_length=5000)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="saved_replies",
        verbose_name=_("team"),
        help_text=_("Leave empty for a saved reply every team may use."),
    )
    created_by = models.ForeignKey(
        Operator,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("changed"), auto_now=True)

    objects = SavedReplyQuerySet.as_manager()

    class Meta:
        ordering = ["title", "pk"]
        verbose_name = _("saved reply")
        verbose_name_plural = _("saved replies")
        # A title names one saved reply among those an operator can pick from, whatever its case.
        # Two conditional constraints rather than one on (team, title): NULL teams are distinct in
        # SQL, and ``nulls_distinct`` is PostgreSQL 15+ only.
        constraints = [
            models.UniqueConstraint(
                Lower("title"),
                "team",
                condition=Q(team__isnull=False),
                name="saved_reply_unique_title_per_team",
                violation_error_message=_("This team has a saved reply with this title already."),
            ),
            models.UniqueConstraint(
                Lower("title"),
                condition=Q(team__isnull=True),
                name="saved_reply_unique_title_for_everyone",
                violation_error_message=_("A saved reply for every team has this title already."),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def first_line(self) -> str:
        """The first non-empty line of the text, for lists."""
        return next((line.strip() for line in self.text.splitlines() if line.strip()), "")
