from __future__ import annotations

from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """The numbers managers read: which channels customers use, how the bot and the team serve them."""

    name = "reports"
    verbose_name = "Reports"

    def ready(self) -> None:
        from reports import receivers  # Django's AppConfig.ready(): subscribe to the core's events

        receivers.connect()
