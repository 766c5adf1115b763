from __future__ import annotations

from django.apps import AppConfig


class ViberConnectorConfig(AppConfig):
    """The Viber connector. No models."""

    name = "connectors.viber"
    label = "viber_connector"
    verbose_name = "Viber connector"

    def ready(self) -> None:
        from connectors.viber import connector, receivers  # noqa: F401 - imported to register
