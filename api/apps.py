from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    """The REST API under ``/api/v1/`` (docs/api.md): tokens, the endpoints, idempotent writes."""

    name = "api"
    verbose_name = _("API")
    default_auto_field = "django.db.models.BigAutoField"
