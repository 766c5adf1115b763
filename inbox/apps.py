from __future__ import annotations

from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Inbox"

    def ready(self) -> None:
        # Connectors register themselves into the transport registry when imported.
        from inbox import transport

        transport.load_connectors()
