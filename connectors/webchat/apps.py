from __future__ import annotations

from django.apps import AppConfig


class WebchatConfig(AppConfig):
    name = "connectors.webchat"
    label = "webchat"
    verbose_name = "Website chat"

    def ready(self) -> None:
        from connectors.webchat.connector import WebchatConnector
        from connectors.webchat.receivers import operator_joined, operator_typing
        from inbox import signals
        from inbox.transport import register

        register(WebchatConnector)
        signals.operator_typing.connect(operator_typing, dispatch_uid="webchat-operator-typing")
        signals.activity_recorded.connect(operator_joined, dispatch_uid="webchat-operator-joined")
