"""Meta: WhatsApp Cloud API (``whatsapp-cloud``), Facebook Messenger (``messenger``) and Instagram
direct messages (``instagram``) — one Meta app, one webhook shape, one signature.

Importing the package registers the three connectors: the core imports every package in
``connectors/`` once models are loaded. As an installed app (for its templates and the
``meta_templates`` command) Django imports it earlier, before models exist; then
:class:`~connectors.meta.apps.MetaConnectorConfig` registers in ``ready()``.
How to connect a real number, Page or Instagram account: docs/connectors/meta.md.
"""

from __future__ import annotations

from django.apps import apps

if apps.models_ready:
    from connectors.meta import messenger, whatsapp  # noqa: F401 - imported to register
