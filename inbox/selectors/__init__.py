"""The core's reads, by topic: ``conversations`` (the inbox list, the thread, the customer panel,
presence), ``search``, ``customers`` (the list, the profile, merge previews), ``saved_replies`` and
``cursors`` (keyset pagination). Each costs a fixed number of queries whatever the size of the data.
Import the module you need; this package re-exports nothing.
"""

from __future__ import annotations
