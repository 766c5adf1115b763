from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from bot.calibration import ALL_LANGUAGES


def text_hash(text: str) -> str:
    """The cache key of a text: sha256 of the text exactly as it is given to the encoder."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ArticleQuerySet(models.QuerySet["Article"]):
    def active(self) -> ArticleQuerySet:
        return self.filter(is_active=True)


class Article(models.Model):
    """One answer the bot may give, found through its example questions."""

    title = models.CharField(_("title"), max_length=200)
    answer = models.TextField(_("answer"))
    language = models.CharField(_("language"), max_length=16, default="en")
    tags: models.JSONField[list[str]] = models.JSONField(_("tags"), default=list, blank=True)
    # Channel ids that may use this article; empty means every channel.
    channels: models.JSONField[list[int]] = models.JSONField(
        _("channels"), default=list, blank=True, help_text=_("Channel ids; empty for all channels.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ArticleQuerySet.as_manager()

    class Meta:
        ordering = ["title"]
        verbose_name = _("article")
        verbose_name_plural = _("articles")

    def __str__(self) -> str:
        return self.title

    def allows_channel(self, channel_id: int | None) -> bool:
        return channel_id is None or not self.channels or channel_id in self.channels


class ExampleQuestion(models.Model):
    """A way a customer asks for an article; the retriever compares messages with these."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="examples")
    text = models.CharField(_("text"), max_length=500)
    language = models.CharField(_("language"), max_length=16, default="en")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("example question")
        verbose_name_plural = _("example questions")
        constraints = [models.UniqueConstraint(fields=["article", "text"], name="triage_example_unique")]

    def __str__(self) -> str:
        return self.text


class KnownOutOfScope(models.Model):
    """A message the bot must not answer (handed-off questions, greetings, complaints...).

    Calibration uses these as negatives, per language; the retriever's head may learn them as a
    class of their own.
    """

    class Source(models.TextChoices):
        MANUAL = "manual", _("Added by a person")
        HANDOFF = "handoff", _("Handed off by the bot")
        IMPORT = "import", _("Imported")

    text = models.CharField(_("text"), max_length=500)
    language = models.CharField(_("language"), max_length=16, default="en")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("known out-of-scope message")
        verbose_name_plural = _("known out-of-scope messages")
        constraints = [models.UniqueConstraint(fields=["text", "language"], name="triage_known_oos_unique")]

    def __str__(self) -> str:
        return self.text


class EncodedText(models.Model):
    """A cached vector of one text under one encoder, so that only changed texts are re-embedded."""

    encoder = models.CharField(max_length=100)
    text_hash = models.CharField(max_length=64)
    dim = models.PositiveIntegerField()
    vector = models.BinaryField()  # float32, little-endian
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["encoder", "text_hash"], name="triage_encoded_unique")]

    def __str__(self) -> str:
        return f"{self.encoder}:{self.text_hash[:12]}"

    def as_array(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        return np.frombuffer(bytes(self.vector), dtype="<f4").reshape(self.dim)


class CalibrationQuerySet(models.QuerySet["Calibration"]):
    def latest_for(self, *, encoder: str, language: str) -> Calibration | None:
        return self.filter(encoder=encoder, language=language).order_by("-computed_at", "-pk").first()


class Calibration(models.Model):
    """The operating point of one encoder for one language, computed from data, never guessed.

    ``language`` is ``"*"`` for the pooled record that covers languages without enough data.
    """

    ALL_LANGUAGES = ALL_LANGUAGES

    encoder = models.CharField(max_length=100)
    language = models.CharField(max_length=16)
    threshold = models.FloatField(help_text=_("Hand off below this confidence."))
    margin = models.FloatField(help_text=_("Ask 'did you mean A or B?' when the best two are closer than this."))
    computed_at = models.DateTimeField()
    # The numbers it was computed from: sample sizes, targets, what the point reached on them.
    stats: models.JSONField[dict[str, Any]] = models.JSONField(default=dict)

    objects = CalibrationQuerySet.as_manager()

    class Meta:
        verbose_name = _("calibration")
        verbose_name_plural = _("calibrations")
        indexes = [models.Index(fields=["encoder", "language", "-computed_at"], name="triage_calibration_latest")]
        constraints = [
            models.CheckConstraint(condition=Q(margin__gte=0), name="triage_calibration_margin_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.encoder} [{self.language}] threshold={self.threshold:.3f} margin={self.margin:.3f}"


class BotDecision(models.Model):
    """What the bot did with one customer message, and the scores it decided on.

    One row per message (the unique constraint makes triage idempotent: a retried task finds the
    row and stops). Hand-offs are logged here with their reason, so they can be counted and read.
    """

    class Action(models.TextChoices):
        ANSWER = "answer", _("Answered")
        CLARIFY = "clarify", _("Asked which article")
        HANDOFF = "handoff", _("Handed off")
        SKIP = "skip", _("Stayed silent")

    message = models.OneToOneField("inbox.Message", on_delete=models.CASCADE, related_name="bot_decision")
    conversation = models.ForeignKey("inbox.Conversation", on_delete=models.CASCADE, related_name="bot_decisions")
    action = models.CharField(max_length=10, choices=Action.choices)
    reason = models.CharField(max_length=40)
    article = models.ForeignKey(Article, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Articles offered ("did you mean A or B?"), in order; the customer may answer 1 or 2.
    offered: models.JSONField[list[int]] = models.JSONField(default=list, blank=True)
    language = models.CharField(max_length=16, blank=True)
    encoder = models.CharField(max_length=100, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    scores: models.JSONField[dict[str, Any]] = models.JSONField(default=dict, blank=True)
    elapsed_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("bot decision")
        verbose_name_plural = _("bot decisions")
        indexes = [
            models.Index(fields=["conversation", "-created_at"], name="triage_decision_conversation"),
            models.Index(fields=["action", "reason", "-created_at"], name="triage_decision_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.action} ({self.reason}) on message {self.message_id}"


class BusinessHours(models.Model):
    """When a team's people answer. A team without business hours is open around the clock.

    Times are wall-clock times in the team's time zone (``Team.timezone``), so opening hours stay
    put across daylight-saving changes.
    """

    team = models.OneToOneField("inbox.Team", on_delete=models.CASCADE, related_name="business_hours")
    closed_message = models.TextField(
        _("closed message"),
        blank=True,
        help_text=_("Told to customers who write while the team is closed; empty for the default."),
    )

    class Meta:
        verbose_name = _("business hours")
        verbose_name_plural = _("business hours")

    def __str__(self) -> str:
        return str(self.team)


class OpeningInterval(models.Model):
    """One weekly opening, e.g. Monday 09:00-17:00. A closing time at or before the opening time runs past midnight."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, _("Monday")
        TUESDAY = 1, _("Tuesday")
        WEDNESDAY = 2, _("Wednesday")
        THURSDAY = 3, _("Thursday")
        FRIDAY = 4, _("Friday")
        SATURDAY = 5, _("Saturday")
        SUNDAY = 6, _("Sunday")

    hours = models.ForeignKey(BusinessHours, on_delete=models.CASCADE, related_name="intervals")
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    opens = models.TimeField(_("opens"))
    closes = models.TimeField(_("closes"))

    class Meta:
        ordering = ["weekday", "opens"]
        verbose_name = _("opening interval")
        verbose_name_plural = _("opening intervals")

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"


class Holiday(models.Model):
    """A day (in the team's time zone) the team is closed whatever its weekly hours say."""

    hours = models.ForeignKey(BusinessHours, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField(_("date"))
    name = models.CharField(_("name"), max_length=100, blank=True)

    class Meta:
        ordering = ["date"]
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        constraints = [models.UniqueConstraint(fields=["hours", "date"], name="triage_holiday_unique")]

    def __str__(self) -> str:
        return f"{self.date} {self.name}".strip()


class ImportJob(models.Model):
    """One uploaded knowledge-base file (JSON or CSV) and what became of it.

    The file is kept in the row until it is imported (a worker on another machine can read it). Importing is all or
    nothing: the articles and the ``done`` status commit together; a file with errors is
    ``failed`` with its row-by-row errors and nothing of it is stored.
    """

    class Format(models.TextChoices):
        JSON = "json", "JSON"
        CSV = "csv", "CSV"

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for the worker")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Imported")
        FAILED = "failed", _("Failed")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    filename = models.CharField(_("file name"), max_length=255, blank=True)
    format = models.CharField(_("format"), max_length=4, choices=Format.choices)
    content = models.TextField()
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)  # articles in the file
    processed = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    # [{"row": 3, "field": "language", "message": "..."}]; row 0 is the file as a whole.
    errors: models.JSONField[list[dict[str, Any]]] = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("knowledge-base import")
        verbose_name_plural = _("knowledge-base imports")

    def __str__(self) -> str:
        return f"{self.filename or self.format} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
