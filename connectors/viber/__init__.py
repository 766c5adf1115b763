"""Viber (REST Bot API): signed callbacks in, send_message out (docs/connectors/viber.md).

An installed app: :class:`~connectors.viber.apps.ViberConnectorConfig` registers the connector
and its receivers in ``ready()``.
"""

from __future__ import annotations
