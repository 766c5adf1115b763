"""Meta: WhatsApp Cloud API (``whatsapp-cloud``), Facebook Messenger (``messenger``) and Instagram
direct messages (``instagram``) — one Meta app, one webhook shape, one signature.

An installed app: :class:`~connectors.meta.apps.MetaConnectorConfig` registers the three
connectors in ``ready()``.
How to connect a real number, Page or Instagram account: docs/connectors/meta.md.
"""

from __future__ import annotations
