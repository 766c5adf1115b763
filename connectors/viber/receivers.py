"""After a Viber message is stored: link a phone number the customer shared, and make a customer who
unsubscribed reachable again now that they write (a message subscribes them).

``parse`` only marks what it saw (``metadata["shared_phone"]``); what follows runs once the message
is committed (``inbox.signals.message_received``), as :mod:`connectors.phone_sharing` does it for
every messenger of its kind. A phone number is linked, merging with that number's customer, only
when it answers our share-phone button (Viber echoes the button's tracking data; a contact card
names no owner); anyone else's number is only noted on the customer's profile, where the duplicate
suggestions pick it up for an operator.
"""

from __future__ import annotations

from connectors import phone_sharing

phone_sharing.connect(kind="viber", name="Viber")
