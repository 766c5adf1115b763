"""The website chat's scheduled work: emailing replies the visitor did not see (beat, every minute)."""

from __future__ import annotations

from celery import shared_task

from connectors.webchat import fallback


@shared_task
def email_unseen_replies() -> int:
    """Email every operator's reply that is due (:mod:`connectors.webchat.fallback`); returns how many mails."""
    return len(fallback.email_unseen_replies())
