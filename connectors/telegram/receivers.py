"""After a Telegram message is stored: link a phone number the customer shared, and make a customer
who blocked the bot reachable again now that they write.

``parse`` only marks what it saw (``metadata["shared_phone"]``); what follows runs once the message
is committed (``inbox.signals.message_received``), as :mod:`connectors.phone_sharing` does it for
every messenger of its kind. A phone number is linked, merging with that number's customer, only
when Telegram says it is the sender's own (``contact.user_id == from.id``); anyone else's number is
only noted on the customer's profile, where the duplicate suggestions pick it up for an operator to
decide.
"""

from __future__ import annotations

from connectors import phone_sharing

phone_sharing.connect(kind="telegram", name="Telegram")
