"""The inbox's views, by page: ``conversations`` (the list, the thread, the reply box, conversation
actions), ``search``, ``attachments``, ``saved_replies``, ``customers`` (the list, the profile,
merges), ``webhooks`` (the one way in for providers, and the health check) and ``base``, the public
helpers every view of a conversation or message uses (the bot's thread actions too).
"""

from __future__ import annotations
