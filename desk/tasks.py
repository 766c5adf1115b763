"""The worker's side of automation rules: one task per event delivery, and the "no reply" sweep."""

from __future__ import annotations

from celery import shared_task

from desk import csat, rules, services
from desk.models import Rule


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=2, max_retries=5, ignore_result=True)
def run_rules(when: str, event_id: str, conversation_id: int, message_id: int | None = None, depth: int = 0) -> int:
    """Run the rules for one event; a retried or re-delivered task runs no rule twice (claims)."""
    return len(
        rules.run_event(
            when=when, event_id=event_id, conversation_id=conversation_id, message_id=message_id, depth=depth
        )
    )


@shared_task(ignore_result=True)
def sweep_no_reply() -> int:
    """The scheduler's minute: the "nobody replied for N minutes" events that are due, each run here."""
    due = rules.sweep_no_reply()
    for minutes, conversation_id, event_id in due:
        rules.run_event(when=Rule.When.NO_REPLY, event_id=event_id, conversation_id=conversation_id, minutes=minutes)
    return len(due)


@shared_task(ignore_result=True)
def sweep_sla_breaches() -> int:
    """The scheduler's half-minute: re-render the conversations that just turned amber, mark the SLA
    targets past due (each once), tell the assignee and the team's leads, and run the "SLA target
    missed" rules for each breach."""
    services.sweep_warnings()
    marked = services.sweep_breaches()
    for conversation_id, _target, event_id in marked:
        rules.run_event(when=Rule.When.SLA_BREACHED, event_id=event_id, conversation_id=conversation_id)
    return len(marked)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=2, max_retries=5, ignore_result=True)
def ask_csat(conversation_id: int) -> bool:
    """Send a resolved conversation's satisfaction survey; a retried task asks once (a claimed row)."""
    return csat.ask(conversation_id=conversation_id) is not None
