"""Keep a customer's contact (the address that names them while they have no name) in step with
their identities, whoever writes them: our services, Django's admin, a shell. Queryset updates
(a merge moving identities) call :func:`customers.services.refresh_contact` themselves."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from customers.models import Identity
from customers.services import refresh_contact


@receiver(post_save, sender=Identity, dispatch_uid="customers.contact.saved")
@receiver(post_delete, sender=Identity, dispatch_uid="customers.contact.deleted")
def identity_changed(sender: type[Identity], instance: Identity, **kwargs: Any) -> None:
    refresh_contact(customer_ids=[instance.customer_id])
