"""Errors to Sentry (or a server that speaks its protocol), only when ``SENTRY_DSN`` is set.

Called from the settings, so that every process (web, worker, scheduler, ``manage.py``) reports
the same way. Personal data stays home: ``send_default_pii=False`` (no cookies, user names, client
addresses) and no request bodies (a webhook's body is a customer's message).
"""

from __future__ import annotations

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.types import Event, Hint

from ops import requestid


def init_sentry(*, dsn: str, environment: str, release: str = "", traces_sample_rate: float = 0.0) -> None:
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        max_request_body_size="never",
        traces_sample_rate=traces_sample_rate,
        before_send=tag_request_id,
    )


def tag_request_id(event: Event, hint: Hint) -> Event:
    """The request id of the request or task that failed, to find its log lines."""
    request_id = requestid.current.get()
    if request_id:
        event.setdefault("tags", {})["request_id"] = request_id
    return event
