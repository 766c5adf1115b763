from __future__ import annotations

from django.apps import AppConfig


class MetaConnectorConfig(AppConfig):
    """WhatsApp Cloud API, Messenger and Instagram. No models: what they keep lives in Channel.state."""

    name = "connectors.meta"
    label = "meta_connector"
    verbose_name = "Meta connectors (WhatsApp Cloud API, Messenger, Instagram)"

    def ready(self) -> None:
        from connectors.meta import messenger, whatsapp  # noqa: F401 - imported to register
