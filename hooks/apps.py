from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HooksConfig(AppConfig):
    name = "hooks"
    verbose_name = _("Webhooks out")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from hooks import receivers  # noqa: F401 - writes deliveries in the writer's transaction
