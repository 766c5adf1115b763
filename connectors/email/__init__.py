"""Email: IMAP (IDLE and polling) and Mailgun's inbound-parse webhook in, SMTP out.

An installed app: :class:`~connectors.email.apps.EmailConnectorConfig` registers the connector
and its Celery tasks in ``ready()``.
"""

from __future__ import annotations
