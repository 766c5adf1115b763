"""The one writer of the audit log."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

from django.db import models
from django.http import HttpRequest

from audit.models import Entry
from common.throttle import client_ip

logger = logging.getLogger(__name__)

# Kinds of target as the log names them, where the model's own name would mislead.
_KINDS = {"auth.group": "role"}


def kind_of(model: type[models.Model] | models.Model) -> str:
    meta = model._meta
    return _KINDS.get(meta.label_lower, meta.model_name or "")


def _address(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    value = client_ip(request)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _actor(actor: Any, request: HttpRequest | None, label: str) -> tuple[int | None, str]:
    if actor is None and request is not None and not label:
        actor = getattr(request, "user", None)
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None, ""
    return int(actor.pk), str(actor.get_username())


def record(
    *,
    action: str,
    actor: Any = None,
    request: HttpRequest | None = None,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: object = "",
    target_label: str = "",
    details: Mapping[str, Any] | None = None,
    actor_label: str = "",
) -> Entry:
    """Append one entry. Call it in the transaction of the change it records, so both or neither stay.

    ``actor`` is the operator who acted (by default the request's signed-in user); ``actor_label``
    names someone who is no signed-in operator (the username a failed sign-in gave). ``target`` is the row acted
    on (its kind, id and name are taken from it), or give ``target_type``/``target_id``/``target_label``.
    ``details`` holds names, never secret values.
    """
    actor_id, actor_name = _actor(actor, request, actor_label)
    if target is not None:
        target_type = target_type or kind_of(target)
        target_id = target_id or target.pk
        target_label = target_label or str(target)
    entry = Entry.objects.create(
        action=action,
        actor_id=actor_id,
        actor=(actor_name or actor_label)[:150],
        address=_address(request),
        target_type=target_type[:40],
        target_id=str(target_id if target_id is not None else "")[:64],
        target=target_label[:200],
        details=dict(details or {}),
    )
    logger.info("audit: %s", entry)
    return entry
