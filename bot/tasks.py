"""Celery tasks of the bot: each takes ids and calls one service."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init
from django import db

from bot import kb, knowledge, services
from bot.encoders import FALLBACK_ENCODER, build_encoder, get_encoder, preload_modules

logger = logging.getLogger(__name__)

# A bot turn normally takes tens of milliseconds; the first one in a process also loads the model
# and trains the head. Past the soft limit the conversation goes to people.
SOFT_TIME_LIMIT = 60
TIME_LIMIT = 90


@worker_init.connect
def preload_bot_modules(**kwargs: Any) -> None:
    """Import the bot's libraries in the worker's parent, before it forks (see encoders.preload_modules)."""

    try:
        preload_modules()
        logger.info("bot modules preloaded")
    except Exception:
        logger.exception("could not preload the bot's modules; each turn imports them")


@shared_task(acks_late=True, soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT)
def triage_message(message_id: int) -> str:
    """The bot's turn for one customer message (idempotent: a second run finds the decision)."""
    try:
        decision = services.run_triage(message_id=message_id)
    except SoftTimeLimitExceeded:
        logger.warning("bot ran out of time on message %s; handing off", message_id)
        # The limit may have struck mid-query: hand off on a fresh connection.
        db.connections.close_all()
        decision = services.hand_off_after_failure(message_id=message_id, reason="timeout")
    return decision.action if decision is not None else "silent"


@shared_task
def sweep_untriaged() -> int:
    """Hand to people any bot conversation whose last customer message never got a bot turn."""
    return len(services.sweep_untriaged())


def enqueue_triage(message_id: int) -> None:
    """Schedule the bot's turn; if the broker is down, hand off now rather than leave silence."""
    try:
        triage_message.delay(message_id)
    except Exception:
        logger.exception("could not enqueue the bot's turn for message %s; handing off", message_id)
        services.hand_off_after_failure(message_id=message_id, reason="bot_unavailable")


@shared_task(soft_time_limit=1800, time_limit=1900)
def recalibrate() -> int:
    """Recompute the operating points (after the knowledge base changed); returns how many were stored."""
    signature, _latest = kb.knowledge_signature()  # what this calibration sees (edits may follow)
    encoder = get_encoder()
    records = knowledge.calibrate(encoder=encoder)
    if encoder.name != build_encoder(FALLBACK_ENCODER).name:
        records += knowledge.calibrate(encoder=build_encoder(FALLBACK_ENCODER))
    kb.remember_calibrated(signature)
    return len(records)


@shared_task(ignore_result=True)
def calibrate_if_changed() -> bool:
    """The scheduler's minute: calibrate once the knowledge base changed and has been quiet a while."""
    return kb.calibrate_if_changed()


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900)
def import_knowledge(job_id: int) -> str:
    """Import one uploaded knowledge-base file (all or nothing); returns its final status."""

    return kb.run_import(job_id=job_id).status
