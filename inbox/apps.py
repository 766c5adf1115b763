from __future__ import annotations

from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Inbox"

    def ready(self) -> None:
        # Connectors register themselves into the transport registry when imported.
        # assignment and access connect their signal receivers when imported.
        from inbox import access, assignment, transport  # noqa: F401

        transport.load_connectors()
