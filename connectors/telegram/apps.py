from __future__ import annotations

from django.apps import AppConfig


class TelegramConnectorConfig(AppConfig):
    """The Telegram connector. No models: the polling offset lives in ``Channel.state``."""

    name = "connectors.telegram"
    label = "telegram_connector"
    verbose_name = "Telegram connector"

    def ready(self) -> None:
        from connectors.telegram import connector, receivers, tasks  # noqa: F401 - imported to register
