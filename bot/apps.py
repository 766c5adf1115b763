from __future__ import annotations

from django.apps import AppConfig


class BotConfig(AppConfig):
    """The bot-first layer: knowledge base, answer retrieval, calibration, hand-off policy."""

    name = "bot"
    # The database label stays the one the app was born with (it lived in bot/), so that
    # existing installations keep their tables and migration history without a rename migration.
    label = "triage"
    verbose_name = "Bot"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The bot takes its turn after each customer message the core stores (inbox.signals).
        # Business hours tell a waiting customer when people are back (on conversation_queued).
        # Imported here, once the models are loaded (as Django requires of ready()).
        from bot import hours, receivers  # noqa: F401
        from bot.assistant import BotAssistant
        from inbox import assistant

        # Voice asks the bot through the core's small interface, never by name.
        assistant.register(BotAssistant())
