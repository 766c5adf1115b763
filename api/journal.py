"""Every write through the API is an audit-log entry, naming the token that made it."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from api.auth import operator_of, token_of
from audit.services import record


def record_write(
    request: HttpRequest,
    *,
    action: str,
    target: models.Model,
    target_type: str = "",
    target_label: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Append the entry; call it inside the write's transaction, so both or neither stay."""
    token = token_of(request)
    record(
        action=action,
        actor=operator_of(request),
        request=request,
        target=target,
        target_type=target_type,
        target_label=target_label,
        details={"via": "api", "token": f"{token.name} (parley_{token.prefix}…)", **(details or {})},
    )
