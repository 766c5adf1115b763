"""The core's writers, by topic: every change to conversations, messages and channels goes through
one of these modules (``conversations``, ``activity``, ``inbound``, ``outbound``, ``attachments``,
``channels``, ``assignment``, ``replies`` (saved replies), ``customers``). Import the module you need
(``from inbox.services import outbound``); this package re-exports nothing.
"""

from __future__ import annotations
