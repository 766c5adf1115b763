from __future__ import annotations

from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    """The built-in simulator connector and its pages; every real connector is an app of its own
    (``connectors.twilio``, ``connectors.email``, …) that registers in its ``ready()``."""

    name = "connectors"
    verbose_name = "Connectors"

    def ready(self) -> None:
        from connectors import simulator  # noqa: F401 - imported to register
