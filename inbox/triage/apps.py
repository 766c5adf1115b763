from __future__ import annotations

from django.apps import AppConfig


class TriageConfig(AppConfig):
    """The bot-first layer: knowledge base, answer retrieval, calibration, hand-off policy."""

    name = "inbox.triage"
    label = "triage"
    verbose_name = "Bot and knowledge base"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The bot takes its turn after each customer message the core stores (inbox.signals).
        # Business hours tell a waiting customer when people are back (on conversation_queued).
        from inbox.triage import hours, receivers  # noqa: F401
