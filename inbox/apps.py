from __future__ import annotations

from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Inbox"

    def ready(self) -> None:
        # Connectors are apps that register into inbox.transport in their own ready().
        # Imported here, once the models are loaded: assignment and access connect their signal
        # receivers when imported.
        from inbox.realtime import access  # noqa: F401
        from inbox.services import assignment  # noqa: F401
