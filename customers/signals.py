"""The customer events, sent after commit by this app's services (the only writers of customers).

They are listed with the core's events in :mod:`inbox.signals`, which subscribers import.
"""

from __future__ import annotations

from common.events import Event

# A customer was created (first contact on a channel, a CRM upsert, an import). kwargs: customer_id.
customer_created = Event("customer.created")
# A customer's own data changed (name, language, external id, attributes, ...). kwargs: customer_id,
# fields (the names that changed).
customer_updated = Event("customer.updated")
# ``source_id`` was merged into ``customer_id`` (the one who stays). kwargs: customer_id, source_id,
# merge_id.
customer_merged = Event("customer.merged")
