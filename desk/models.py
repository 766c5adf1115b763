"""The support manager's tools: labels, macros, team settings, automation rules and SLA policies."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from inbox.models import Channel, Conversation, Message, Operator, Team


class Label(models.Model):
    """A tag staff define and operators put on conversations ("refund", "bug", "VIP order").

    The colour is one of a fixed palette, each readable as white text on it (contrast at least
    4.5:1, WCAG AA), shown through a class (``label-blue``...): the CSP allows no inline style.
    """

    class Colour(models.TextChoices):
        BLUE = "blue", _("Blue")
        GREEN = "green", _("Green")
        RED = "red", _("Red")
        ORANGE = "orange", _("Orange")
        PURPLE = "purple", _("Purple")
        TEAL = "teal", _("Teal")
        PINK = "pink", _("Pink")
        GREY = "grey", _("Grey")

    name = models.CharField(_("name"), max_length=50)
    colour = models.CharField(_("colour"), max_length=8, choices=Colour.choices, default=Colour.BLUE)
    description = models.CharField(_("description"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name = _("label")
        verbose_name_plural = _("labels")
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="desk_label_unique_name",
                violation_error_message=_("A label with this name exists already."),
            )
        ]

    def __str__(self) -> str:
        return self.name


class ConversationLabel(models.Model):
    """A label on a conversation. ``Conversation.labels`` mirrors the names (for the bot's hand-off
    rules and the inbox list, which read no table of this app); :mod:`desk.services` writes both."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="label_links")
    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="links")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["conversation", "label"], name="desk_conversation_label_unique")]
        # The inbox filter and the reports go from a label to its conversations.
        indexes = [models.Index(fields=["label", "conversation"], name="desk_label_conversations")]

    def __str__(self) -> str:
        return f"{self.label_id} on {self.conversation_id}"


class MacroQuerySet(models.QuerySet["Macro"]):
    def visible_to(self, operator: Operator) -> MacroQuerySet:
        """Everyone's (team-less) macros and those of the operator's teams; every one for staff."""
        if operator.is_staff:
            return self
        return self.filter(Q(team__isnull=True) | Q(team_id__in=operator.team_ids))

    def for_conversation(self, conversation: Conversation) -> MacroQuerySet:
        """The macros that apply to a conversation: team-less ones and its team's."""
        return self.filter(Q(team__isnull=True) | Q(team_id=conversation.team_id))


class Macro(models.Model):
    """A named list of actions an operator runs on a conversation in one click ("Refund sent":
    reply with the refund saved reply, label Refund, resolve).

    ``actions`` is a list of ``{"action": ..., ...}`` steps, run in order in one transaction
    (:func:`desk.services.run_macro`): ``add_label`` (``label``: id), ``priority`` (``priority``:
    0-3), ``assign`` (``operator``: id, or ``"me"`` for whoever runs it), ``reply`` (``saved_reply``:
    id; its placeholders are filled for the conversation) and ``resolve``. A macro without a team is
    everyone's; a team's applies to that team's conversations only.
    """

    ACTIONS = ("add_label", "priority", "assign", "reply", "resolve")

    name = models.CharField(_("name"), max_length=80)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="macros",
        verbose_name=_("team"),
        help_text=_("Leave empty for a macro every team may use."),
    )
    actions: models.JSONField[list[dict[str, Any]]] = models.JSONField(_("actions"), default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MacroQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        verbose_name = _("macro")
        verbose_name_plural = _("macros")
        # As saved replies: two conditional constraints, since NULL teams are distinct in SQL.
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                "team",
                condition=Q(team__isnull=False),
                name="desk_macro_unique_name_per_team",
                violation_error_message=_("This team has a macro with this name already."),
            ),
            models.UniqueConstraint(
                Lower("name"),
                condition=Q(team__isnull=True),
                name="desk_macro_unique_name_for_everyone",
                violation_error_message=_("A macro for every team has this name already."),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TeamSettings(models.Model):
    """How a team works, beyond the inbox's own fields: the manager's switches."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="desk_settings", verbose_name=_("team"))
    only_assignee_replies = models.BooleanField(
        _("only the assignee replies"),
        default=False,
        help_text=_(
            "Operators may reply to a conversation assigned to someone else only by taking it first. "
            "Unassigned conversations stay open to the team; admins may always reply."
        ),
    )

    csat_enabled = models.BooleanField(
        _("ask for satisfaction (CSAT)"),
        default=False,
        help_text=_(
            "When a conversation is resolved, ask the customer on their channel to rate it from 1 to 5, "
            "once per conversation."
        ),
    )
    csat_skip_bot_only = models.BooleanField(
        _("not after the bot alone answered"),
        default=True,
        help_text=_("Do not ask when the bot handled the conversation and no operator wrote to the customer."),
    )
    csat_question = models.CharField(
        _("satisfaction question"),
        max_length=300,
        blank=True,
        help_text=_("Leave empty for “How would you rate our help?”, in the customer's language."),
    )

    class Meta:
        verbose_name = _("team settings")
        verbose_name_plural = _("team settings")

    def __str__(self) -> str:
        return str(self.team)


class Rule(models.Model):
    """An automation rule: *when* an event happens, *if* the conversation matches, *then* act.

    Rules run in the worker after the event's transaction commits (:mod:`desk.rules`), in
    ``position`` order (then id), each at most once per event delivery (:class:`RuleRun`).
    ``conditions`` is a dict; every key present must match (see ``desk.rules.CONDITIONS``).
    ``actions`` is a list of ``{"action": ...}`` steps as macros have, plus ``assign_team``
    and ``note``. A rule with a team applies to that team's conversations only.
    """

    class When(models.TextChoices):
        INBOUND = "message.inbound", _("A customer message is received")
        CREATED = "conversation.created", _("A conversation is opened")
        ASSIGNED = "conversation.assigned", _("A conversation is assigned")
        HANDED_OFF = "conversation.handed_off", _("The bot hands a conversation over")
        RESOLVED = "conversation.resolved", _("A conversation is resolved")
        NO_REPLY = "no_reply", _("Nobody replied for some minutes")
        SLA_BREACHED = "sla.breached", _("An SLA target is missed")

    ACTIONS = ("assign_team", "assign", "add_label", "priority", "reply", "note", "resolve")

    name = models.CharField(_("name"), max_length=80)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="rules",
        verbose_name=_("team"),
        help_text=_("Leave empty for a rule on every team's conversations."),
    )
    when = models.CharField(_("when"), max_length=32, choices=When.choices)
    no_reply_minutes = models.PositiveIntegerField(
        _("minutes without a reply"), null=True, blank=True, help_text=_("For “Nobody replied” only.")
    )
    conditions: models.JSONField[dict[str, Any]] = models.JSONField(_("conditions"), default=dict, blank=True)
    actions: models.JSONField[list[dict[str, Any]]] = models.JSONField(_("actions"), default=list)
    position = models.PositiveIntegerField(_("position"), default=100, help_text=_("Lower runs first."))
    enabled = models.BooleanField(_("on"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "pk"]
        verbose_name = _("automation rule")
        verbose_name_plural = _("automation rules")
        indexes = [models.Index(fields=["when", "enabled", "position"], name="desk_rule_when")]

    def __str__(self) -> str:
        return self.name


class RuleRun(models.Model):
    """That a rule ran for one event delivery: claimed with an insert that does nothing on a
    conflict, so a re-delivered event (a retried task, a second worker) runs no rule twice."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="runs")
    event_id = models.CharField(max_length=200)
    conversation_id = models.BigIntegerField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "event_id"], name="desk_rulerun_once")]

    def __str__(self) -> str:
        return f"{self.rule_id} for {self.event_id}"


class SlaPolicy(models.Model):
    """Service-level targets for a team's conversations, optionally narrowed to a priority and/or a
    label. The first enabled policy by ``position`` (then id) that matches a conversation applies
    (:func:`desk.services.policy_for`). Targets are minutes of business time (the team's opening
    hours and holidays, when ``business_hours`` is on and the team keeps hours), empty for none."""

    # What staff set, in the order the form, the admin's list and the audit log show it.
    EDITABLE: ClassVar[tuple[str, ...]] = (
        *("name", "team", "priority", "label", "first_response_minutes", "next_response_minutes"),
        *("resolution_minutes", "business_hours", "position", "enabled"),
    )

    name = models.CharField(_("name"), max_length=80)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="sla_policies", verbose_name=_("team"))
    priority = models.SmallIntegerField(
        _("priority"),
        choices=Conversation.Priority.choices,
        null=True,
        blank=True,
        help_text=_("Leave empty for every priority."),
    )
    label = models.ForeignKey(
        Label,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sla_policies",
        verbose_name=_("label"),
        help_text=_("Leave empty for every conversation, labelled or not."),
    )
    first_response_minutes = models.PositiveIntegerField(_("first response (minutes)"), null=True, blank=True)
    next_response_minutes = models.PositiveIntegerField(_("next response (minutes)"), null=True, blank=True)
    resolution_minutes = models.PositiveIntegerField(_("resolution (minutes)"), null=True, blank=True)
    business_hours = models.BooleanField(
        _("count business hours only"),
        default=True,
        help_text=_("Count only the team's opening hours, without its holidays. Off: around the clock."),
    )
    position = models.PositiveIntegerField(_("position"), default=100, help_text=_("The first match applies."))
    enabled = models.BooleanField(_("on"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team", "position", "pk"]
        verbose_name = _("SLA policy")
        verbose_name_plural = _("SLA policies")
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                "team",
                name="desk_slapolicy_unique_name_per_team",
                violation_error_message=_("This team has an SLA policy with this name already."),
            )
        ]

    def __str__(self) -> str:
        return self.name

    def matches(self, conversation: Conversation, label_names: list[str]) -> bool:
        if not self.enabled or self.team_id != conversation.team_id:
            return False
        if self.priority is not None and self.priority != conversation.priority:
            return False
        return self.label is None or self.label.name in label_names


class ConversationSla(models.Model):
    """A conversation's SLA clock (see :mod:`desk.sla`): per target, the business seconds spent,
    when it started, was met (``*_at``) or breached, and — while it runs — when it is due.
    ``next_due`` is the nearest due time of what runs and is neither met nor breached: the
    scheduler's breach sweep reads it through its index. Written by :mod:`desk.services` only."""

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="sla")
    policy = models.ForeignKey(SlaPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="clocks")
    running = models.BooleanField(default=False)
    clock_at = models.DateTimeField(null=True, blank=True)
    paused_since = models.DateTimeField(null=True, blank=True)
    paused_seconds = models.FloatField(default=0.0)
    waiting_since = models.DateTimeField(null=True, blank=True)

    first_response_started_at = models.DateTimeField(null=True, blank=True)
    first_response_spent = models.FloatField(default=0.0)
    first_response_due = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    first_response_breached_at = models.DateTimeField(null=True, blank=True)

    next_response_started_at = models.DateTimeField(null=True, blank=True)
    next_response_spent = models.FloatField(default=0.0)
    next_response_due = models.DateTimeField(null=True, blank=True)
    next_response_at = models.DateTimeField(null=True, blank=True)
    next_response_breached_at = models.DateTimeField(null=True, blank=True)

    resolution_spent = models.FloatField(default=0.0)
    resolution_due = models.DateTimeField(null=True, blank=True)
    resolution_at = models.DateTimeField(null=True, blank=True)
    resolution_breached_at = models.DateTimeField(null=True, blank=True)

    next_due = models.DateTimeField(null=True, blank=True)
    soon_at = models.DateTimeField(null=True, blank=True)  # when the nearest running target turns amber
    # The ``soon_at`` the sweep last re-rendered the conversation for (amber live, once per warning).
    warned_at = models.DateTimeField(null=True, blank=True)
    # How many targets were missed over the conversation's life (next-response spells included):
    # the reports' "met" is a conversation with none.
    breaches = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("SLA clock")
        verbose_name_plural = _("SLA clocks")
        indexes = [
            models.Index(fields=["next_due"], condition=Q(next_due__isnull=False), name="desk_sla_next_due"),
            models.Index(fields=["soon_at"], condition=Q(soon_at__isnull=False), name="desk_sla_soon"),
            models.Index(fields=["created_at"], name="desk_sla_created"),
        ]

    def __str__(self) -> str:
        return f"SLA of {self.conversation_id}"


class CsatResponse(models.Model):
    """The satisfaction survey of one conversation and its answer: one row per conversation at most.

    The row is claimed (an insert that does nothing on a conflict) before the survey is queued, so a
    re-delivered "resolved" event, or resolve → reopen → resolve, asks once. ``score`` is empty until
    the customer answers; ``survey`` is empty when the question could not be sent (``skipped``
    says why). ``operator`` is who had the conversation when it was resolved (else the last operator
    who wrote to the customer); ``team`` and ``channel`` are the conversation's team and the channel
    the question went out on, kept here so reports need no join through messages.
    """

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="csat")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    survey = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    asked_at = models.DateTimeField()
    skipped = models.CharField(max_length=300, blank=True)
    score = models.PositiveSmallIntegerField(_("score"), null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(_("comment"), blank=True)
    commented_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("satisfaction answer")
        verbose_name_plural = _("satisfaction answers")
        constraints = [
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=1, score__lte=5), name="desk_csat_score_1_to_5"
            )
        ]
        # Reports read the answers of a period.
        indexes = [models.Index(fields=["answered_at"], name="desk_csat_answered")]

    def __str__(self) -> str:
        return f"{self.score or '-'} for {self.conversation_id}"
