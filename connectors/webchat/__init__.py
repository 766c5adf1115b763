"""The website chat widget: a visitor on a business's own site talks to the same bot and operators.

A Django app of its own (``connectors.webchat``): its :class:`~connectors.webchat.apps.WebchatConfig`
registers the ``webchat`` connector in ``ready()``. The visitor's browser speaks the JSON protocol of
docs/connectors/webchat.md over a websocket (:mod:`connectors.webchat.consumers`) or, when a proxy
blocks websockets, over plain HTTP long polling (:mod:`connectors.webchat.views`).
"""

from __future__ import annotations
