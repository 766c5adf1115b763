from __future__ import annotations

from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Inbox"

    def ready(self) -> None:
        # Connectors are apps that register into inbox.transport in their own ready().
        from inbox import assignment  # noqa: F401 - assignment connects its signal receivers
