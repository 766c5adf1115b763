"""Email: IMAP (IDLE and polling) and Mailgun's inbound-parse webhook in, SMTP out.

Importing the package registers the connector and its Celery tasks: the core imports every package
in ``connectors/`` once models are loaded. When the package is also an installed app (for the
``fetchmail`` command) Django imports it earlier, before models exist; then
:class:`~connectors.email.apps.EmailConnectorConfig` registers in ``ready()``.
"""

from __future__ import annotations

from django.apps import apps

if apps.models_ready:
    from connectors.email import connector, receivers, tasks  # noqa: F401 - imported to register
