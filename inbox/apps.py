from __future__ import annotations

from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Inbox"

    def ready(self) -> None:
        # Connectors register themselves into the transport registry when imported.
        from inbox import assignment, transport  # noqa: F401 - assignment connects its signal receivers

        transport.load_connectors()
