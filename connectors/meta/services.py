"""The Meta connectors' own writers: what they keep in ``Channel.state`` (never edited by people).

- ``state["meta"]["problem"]``: why the channel cannot send (an invalid token, a missing
  permission), shown in the admin's channel page until a send works again;
- ``state["meta"]["templates"]``: the WhatsApp Business Account's message templates as last synced,
  with their status (template status webhooks update it);
- ``state["meta"]["template_events"]``: the latest template status updates Meta sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from inbox.models import Channel

MAX_TEMPLATE_EVENTS = 20


def _change_state(channel: Channel, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    with transaction.atomic():
        state = dict(Channel.objects.select_for_update().values_list("state", flat=True).get(pk=channel.pk) or {})
        meta = dict(state.get("meta") or {})
        change(meta)
        state["meta"] = meta
        # An UPDATE, not save(): the channel's settings are not touched and no caches are emptied.
        Channel.objects.filter(pk=channel.pk).update(state=state)
    channel.state = state
    return meta


def note_problem(*, channel: Channel, problem: str) -> None:
    """Record why the channel cannot send, for admins (the channel needs fixing)."""
    if (channel.state.get("meta") or {}).get("problem") == problem:
        return

    def change(meta: dict[str, Any]) -> None:
        meta["problem"] = problem
        meta["problem_at"] = timezone.now().isoformat()

    _change_state(channel, change)


def clear_problem(*, channel: Channel) -> None:
    """A send worked: whatever was wrong is fixed."""
    if not (channel.state.get("meta") or {}).get("problem"):
        return

    def change(meta: dict[str, Any]) -> None:
        meta.pop("problem", None)
        meta.pop("problem_at", None)

    _change_state(channel, change)


def store_templates(*, channel: Channel, templates: list[dict[str, Any]]) -> None:
    def change(meta: dict[str, Any]) -> None:
        meta["templates"] = templates
        meta["templates_synced_at"] = timezone.now().isoformat()

    _change_state(channel, change)


def record_template_status(*, channel: Channel, update: dict[str, Any]) -> None:
    """A ``message_template_status_update``: the synced template's status follows, and it is kept."""
    name = str(update.get("message_template_name", ""))
    language = str(update.get("message_template_language", ""))
    status = str(update.get("event", "")).upper()

    def change(meta: dict[str, Any]) -> None:
        templates = [dict(t) for t in meta.get("templates") or []]
        for template in templates:
            if template.get("name") == name and (not language or template.get("language") == language):
                template["status"] = status
        meta["templates"] = templates
        events = list(meta.get("template_events") or [])
        events.append(
            {
                "name": name,
                "language": language,
                "status": status,
                "reason": str(update.get("reason", "") or ""),
                "at": timezone.now().isoformat(),
            }
        )
        meta["template_events"] = events[-MAX_TEMPLATE_EVENTS:]

    _change_state(channel, change)
