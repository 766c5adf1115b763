"""The support manager's tools: labels (and, next, macros)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from inbox.models import Conversation


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
