"""Telegram (Bot API): webhook or long polling in, the Bot API out (docs/connectors/telegram.md).

Importing the package registers the connector and its Celery tasks: the core imports every package
in ``connectors/`` once models are loaded. As an installed app Django imports it earlier, before
models exist; then :class:`~connectors.telegram.apps.TelegramConnectorConfig` registers in ``ready()``.
"""

from __future__ import annotations

from django.apps import apps

if apps.models_ready:
    from connectors.telegram import connector, receivers, tasks  # noqa: F401 - imported to register
