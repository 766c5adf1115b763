from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DeskConfig(AppConfig):
    """The support manager's tools, above the core: they plug into the inbox through
    :mod:`inbox.extensions` (the core never imports this app)."""

    name = "desk"
    verbose_name = _("Manager's tools")

    def ready(self) -> None:
        from desk import hooks  # noqa: F401  # Django's AppConfig.ready(): register into inbox.extensions
