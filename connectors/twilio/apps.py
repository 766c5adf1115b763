from __future__ import annotations

from django.apps import AppConfig


class TwilioConnectorConfig(AppConfig):
    name = "connectors.twilio"
    label = "twilio_connector"
    verbose_name = "Twilio connector"

    def ready(self) -> None:
        from connectors.twilio import messaging, optout, tasks, voice  # noqa: F401 - imported to register
