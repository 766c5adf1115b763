"""Customer merges as the inbox sees them: a customer's conversations and messages move with them.

Who the customer is (identities, notes, the merge record) is the customers app's; it knows no
conversation. Here the whole merge runs in one transaction: the customers app checks and locks both
customers (:func:`customers.services.lock_for_merge`), the conversations and their messages move,
then the identities and notes move and the merge is recorded with everything that moved
(:func:`customers.services.merge_identities`), so :func:`undo_merge` gives back exactly that.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audit.services import record
from common.events import send_on_commit
from customers.models import Customer, CustomerMerge
from customers.services import claim_verified_phone, lock_for_merge, merge_identities, undo_identities
from inbox import signals
from inbox.models import Conversation, Message, Operator
from inbox.services import activity


def merge_customers(*, source: Customer, target: Customer, by: Operator | None) -> CustomerMerge:
    """Move ``source``'s identities, conversations, messages and notes to ``target``; recorded.

    When both have an active conversation, the source's is resolved into the target's timeline
    (its messages stay in their own conversation, now the target's), so the one-active rule holds.
    Raises :class:`customers.services.MergeError` when the two cannot be merged.
    """
    with transaction.atomic():
        source, target = lock_for_merge(source=source, target=target)
        conversation_ids = list(source.conversations.values_list("pk", flat=True))
        resolved_ids: list[int] = []
        target_active = target.conversations.open().first()
        if target_active is not None:
            for conversation in source.conversations.open():
                conversation.status = Conversation.Status.RESOLVED
                conversation.resolved_at = timezone.now()
                conversation.save(update_fields=["status", "resolved_at"])
                resolved_ids.append(conversation.pk)
                send_on_commit(signals.conversation_resolved, conversation_id=conversation.pk)
        source.conversations.update(customer=target)
        Message.objects.filter(conversation_id__in=conversation_ids).update(customer=target)
        merge = merge_identities(
            source=source,
            target=target,
            by=by,
            moved={"conversations": conversation_ids, "resolved_conversations": resolved_ids},
        )
        active = target.conversations.open().first() or target.conversations.order_by("-last_message_at").first()
        if active is not None:
            activity.record_activity(
                conversation=active,
                action="merged",
                by=by,
                data={"source": source.pk, "source_name": source.display_name, "merge": merge.pk},
            )
        record(action="merged", actor=by, target=target, details={"source": source.pk, "merge": merge.pk})
        send_on_commit(signals.customer_merged, customer_id=target.pk, source_id=source.pk, merge_id=merge.pk)
    return merge


def undo_merge(*, merge: CustomerMerge, by: Operator | None) -> Customer:
    """Give the source customer back what the merge moved. Returns the restored customer.

    Raises :class:`customers.services.MergeError` for a merge undone already.
    """
    with transaction.atomic():
        source = undo_identities(merge=merge, by=by)
        target = merge.target
        moved_conversations = merge.moved.get("conversations", [])
        Conversation.objects.filter(pk__in=moved_conversations, customer=target).update(customer=source)
        Message.objects.filter(conversation_id__in=moved_conversations).update(customer=source)
        # A conversation the merge resolved (to keep one active conversation) comes back open,
        # unless its customer has another open one by now.
        for conversation in Conversation.objects.filter(pk__in=merge.moved.get("resolved_conversations", [])):
            if not conversation.customer.conversations.open().exists():
                conversation.status = Conversation.Status.OPEN
                conversation.resolved_at = None
                conversation.save(update_fields=["status", "resolved_at"])
                send_on_commit(signals.conversation_reopened, conversation_id=conversation.pk)
        active = target.conversations.open().first()
        if active is not None:
            activity.record_activity(
                conversation=active, action="unmerged", by=by, data={"source": source.pk, "merge": merge.pk}
            )
        record(action="merge_undone", actor=by, target=target, details={"source": source.pk, "merge": merge.pk})
    return source


def link_verified_phone(*, customer: Customer, phone: str) -> Customer:
    """A phone number the customer proved to own (a messenger's own share-my-number button):
    link it, and when it is another customer's number, merge this customer into that one, so the
    SMS, WhatsApp and call history and the messenger's become one thread. Returns the customer
    who now owns the number. Never call it with a number the customer merely typed.
    """
    owner = claim_verified_phone(customer=customer, phone=phone)
    if owner.pk == customer.pk or customer.merged_into_id is not None:
        return owner
    merge_customers(source=customer, target=owner, by=None)
    return owner
