"""Telegram (Bot API): webhook or long polling in, the Bot API out (docs/connectors/telegram.md).

An installed app: :class:`~connectors.telegram.apps.TelegramConnectorConfig` registers the
connector and its Celery tasks in ``ready()``.
"""

from __future__ import annotations
