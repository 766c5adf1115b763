from __future__ import annotations

from django.apps import AppConfig


class EmailConnectorConfig(AppConfig):
    """Installed so that ``manage.py fetchmail`` is found. No models: cursors live in Channel.state."""

    name = "connectors.email"
    label = "email_connector"
    verbose_name = "Email connector"

    def ready(self) -> None:
        from connectors.email import connector, receivers, tasks  # noqa: F401 - imported to register
