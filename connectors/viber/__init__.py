"""Viber (REST Bot API): signed callbacks in, send_message out (docs/connectors/viber.md).

Importing the package registers the connector and its Celery tasks: the core imports every package
in ``connectors/`` once models are loaded. As an installed app Django imports it earlier, before
models exist; then :class:`~connectors.viber.apps.ViberConnectorConfig` registers in ``ready()``.
"""

from __future__ import annotations

from django.apps import apps

if apps.models_ready:
    from connectors.viber import connector, receivers  # noqa: F401 - imported to register
