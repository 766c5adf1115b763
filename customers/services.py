"""Who the customer is: resolving addresses to customers, linking identities, notes, and the
identities-and-notes half of a merge. This app knows no conversation: what a merge does to
conversations and messages is the inbox's (:mod:`inbox.services.customers`)."""

from __future__ import annotations

from typing import Any

import phonenumbers
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Right
from django.utils import timezone
from django.utils.translation import gettext as _

from common import db
from common.events import send_on_commit
from customers.models import PHONE_KINDS, PHONE_TAIL, Customer, CustomerMerge, CustomerNote, Identity, format_phone
from customers.signals import customer_created, customer_updated


class InvalidAddress(ValueError):
    pass


class MergeError(ValueError):
    pass


def normalise_phone(value: str, *, region: str | None = None) -> str:
    """E.164 for any way a person writes a phone number; raises :class:`InvalidAddress`."""
    raw = value.strip()
    for prefix in ("whatsapp:", "tel:", "sms:"):
        if raw.lower().startswith(prefix):
            raw = raw[len(prefix) :]
    if raw.isdigit() and len(raw) > 10:
        raw = "+" + raw  # WhatsApp ids and Telegram contacts come without the plus
    try:
        number = phonenumbers.parse(raw, region or settings.PARLEY_DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress(f"not a phone number: {value!r}") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidAddress(f"not a possible phone number: {value!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_address(kind: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidAddress("empty address")
    if kind == Identity.Kind.PHONE:
        return normalise_phone(value)
    if kind == Identity.Kind.EMAIL:
        if "@" not in value or len(value) > 320:
            raise InvalidAddress(f"not an email address: {value!r}")
        return value.lower()
    if len(value) > 320:
        raise InvalidAddress("address too long")
    return value


# Which address names a customer who has no name: a phone number first (what an operator would
# call), then an email address, then a handle (@name), then whatever says how they came.
CONTACT_RANK = {"phone": 0, "whatsapp": 1, "email": 2, "telegram": 3, "instagram": 3, "viber": 4, "messenger": 4}


def contact_of(identity: Identity) -> str:
    """What of an identity may be shown as the customer's name: a phone number or an email address,
    or a handle the provider gave (``display``). Provider ids (a Telegram chat id, a Messenger PSID,
    a visitor id) are never shown: they mean nothing to a person."""
    if identity.kind in PHONE_KINDS:
        return identity.value if format_phone(identity.value) else identity.display
    if identity.kind == Identity.Kind.EMAIL:
        return identity.value
    return identity.display


def best_contact(identities: list[Identity]) -> tuple[str, str]:
    """The (kind, text) that names a customer without a name; ("", "") when they have no address."""
    if not identities:
        return "", ""

    def rank(identity: Identity) -> tuple[int, int, bool, int]:
        shown = contact_of(identity)
        return (0 if shown else 1, CONTACT_RANK.get(identity.kind, 9), not identity.verified, identity.pk or 0)

    best = min(identities, key=rank)
    return best.kind, contact_of(best)


def refresh_contact(*, customer_ids: list[int]) -> None:
    """Keep ``Customer.contact`` in step with the customers' identities, after any change to them."""
    found: dict[int, list[Identity]] = {pk: [] for pk in customer_ids}
    for identity in Identity.objects.filter(customer_id__in=customer_ids):
        found[identity.customer_id].append(identity)
    for pk, identities in found.items():
        kind, text = best_contact(identities)
        Customer.objects.filter(pk=pk).exclude(contact_kind=kind, contact=text).update(contact_kind=kind, contact=text)


def resolve_customer(*, kind: str, value: str, name: str = "", handle: str = "") -> tuple[Customer, Identity]:
    """The customer who owns an address, created with the identity on first contact.

    Safe under races: two processes creating the same new identity end with one customer. Must run
    inside a transaction. A known address is one query; a new one is two INSERTs, the identity's
    with ``ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite alike): the loser of a race (it waited
    for the winner to commit) removes the customer it made and takes the winner's. ``handle`` is the
    public name of the address the provider gave (``@name``), kept on a new identity.
    """
    value = normalise_address(kind, value)
    identity = Identity.objects.select_related("customer").filter(kind=kind, value=value).first()
    if identity is None:
        # The provider vouches that the message came from this address.
        identity = Identity(kind=kind, value=value, verified=True, display=handle[:320])
        contact_kind, contact = best_contact([identity])
        customer = Customer.objects.create(name=name[:200], contact_kind=contact_kind, contact=contact)
        identity.customer = customer
        if db.insert(identity, conflict=db.on_conflict("kind", "value")):
            send_on_commit(customer_created, customer_id=customer.pk)
            return customer, identity
        Customer.objects.filter(pk=customer.pk).delete()
        identity = Identity.objects.select_related("customer").get(kind=kind, value=value)
    customer = identity.customer
    if name and not customer.name:
        customer.name = name[:200]
        customer.save(update_fields=["name", "updated_at"])
        send_on_commit(customer_updated, customer_id=customer.pk, fields=["name"])
    return customer, identity


def link_identity(*, customer: Customer, kind: str, value: str, verified: bool = False) -> Identity:
    """Attach an address to a customer. An address already owned by someone else is left alone."""
    value = normalise_address(kind, value)
    try:
        with transaction.atomic():
            # Saving it refreshes the customer's contact (customers.receivers).
            return Identity.objects.create(customer=customer, kind=kind, value=value, verified=verified)
    except IntegrityError:
        return Identity.objects.get(kind=kind, value=value)


def claim_verified_phone(*, customer: Customer, phone: str) -> Customer:
    """A phone number the customer proved to own (a messenger's own share-my-number button): link
    it to them unless it is another customer's already. Returns the customer who owns the number now
    (following merges): ``customer``, or the other one, whom the inbox then merges this customer into
    (:func:`inbox.services.customers.link_verified_phone`). Never call it with a number the customer
    merely typed.
    """
    value = normalise_phone(phone)
    identity = Identity.objects.select_related("customer").filter(kind=Identity.Kind.PHONE, value=value).first()
    if identity is None:
        identity = link_identity(customer=customer, kind=Identity.Kind.PHONE, value=value, verified=True)
    owner = identity.customer
    while owner.merged_into_id is not None:  # the number's customer was merged away meanwhile
        owner = Customer.objects.get(pk=owner.merged_into_id)
    return owner


@transaction.atomic
def add_customer_note(*, customer: Customer, author: AbstractBaseUser | None, text: str) -> CustomerNote:
    # By id: the author is whatever AUTH_USER_MODEL is (the inbox's operator); this app names no user model.
    return CustomerNote.objects.create(customer=customer, author_id=author.pk if author else None, text=text.strip())


@transaction.atomic
def update_customer(*, customer: Customer, **fields: Any) -> Customer:
    """Save a customer's own data. An external id another customer has raises ``ValidationError``."""
    allowed = {"name", "language", "attributes", "labels", "is_vip", "external_id"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
    changed = [key for key, value in fields.items() if getattr(customer, key) != value]
    for key, value in fields.items():
        setattr(customer, key, value)
    try:
        with transaction.atomic():
            customer.save(update_fields=[*fields, "updated_at"])
    except IntegrityError as exc:
        raise ValidationError({"external_id": [_("Another customer has this external id.")]}) from exc
    if changed:
        send_on_commit(customer_updated, customer_id=customer.pk, fields=changed)
    return customer


# -- merges: the identities-and-notes half (the inbox moves conversations: inbox.services.customers) --


def lock_for_merge(*, source: Customer, target: Customer) -> tuple[Customer, Customer]:
    """Check that ``source`` may be merged into ``target`` and lock both rows; returns them as locked.

    Raises :class:`MergeError`. Call it inside the merge's transaction, before anything moves.
    """
    if source.pk == target.pk:
        raise MergeError("a customer cannot be merged into themselves")
    if source.merged_into_id is not None or target.merged_into_id is not None:
        raise MergeError("one of these customers was already merged")
    locked = {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=[source.pk, target.pk])}
    return locked[source.pk], locked[target.pk]


def merge_identities(
    *, source: Customer, target: Customer, by: AbstractBaseUser | None, moved: dict[str, list[int]]
) -> CustomerMerge:
    """Move ``source``'s identities and notes to ``target``, mark ``source`` merged into it, and record
    the merge; ``moved`` adds what the caller moved along (the inbox's conversations) to the record,
    so that :func:`undo_identities` and the caller's undo give back exactly that.

    The half of a merge that knows who the customer is; run it in the transaction that locked both
    (:func:`lock_for_merge`). The whole merge is :func:`inbox.services.customers.merge_customers`.
    """
    identity_ids = list(source.identities.values_list("pk", flat=True))
    note_ids = list(source.notes.values_list("pk", flat=True))
    source.identities.update(customer=target)
    source.notes.update(customer=target)
    source.merged_into = target
    source.save(update_fields=["merged_into", "updated_at"])
    # The source keeps its contact: the merge history still names them by it.
    refresh_contact(customer_ids=[target.pk])
    if not target.name and source.name:
        target.name = source.name
        target.save(update_fields=["name", "updated_at"])
    return CustomerMerge.objects.create(
        source=source,
        target=target,
        merged_by_id=by.pk if by else None,
        moved={"identities": identity_ids, **moved, "notes": note_ids},
    )


def undo_identities(*, merge: CustomerMerge, by: AbstractBaseUser | None) -> Customer:
    """Give the source customer back the identities and notes the merge moved, make them a customer
    of their own again and mark the merge undone. Returns the restored customer.

    Raises :class:`MergeError` for a merge undone already. The whole undo (conversations too) is
    :func:`inbox.services.customers.undo_merge`; run this in its transaction.
    """
    if merge.undone_at is not None:
        raise MergeError("this merge was already undone")
    source, target = merge.source, merge.target
    moved = merge.moved
    Identity.objects.filter(pk__in=moved.get("identities", []), customer=target).update(customer=source)
    CustomerNote.objects.filter(pk__in=moved.get("notes", []), customer=target).update(customer=source)
    source.merged_into = None
    source.save(update_fields=["merged_into", "updated_at"])
    refresh_contact(customer_ids=[source.pk, target.pk])
    merge.undone_at = timezone.now()
    merge.undone_by_id = by.pk if by else None
    merge.save(update_fields=["undone_at", "undone_by"])
    return source


def phone_variants(value: str) -> set[str]:
    """Ways the same phone number may have been stored when it was not normalised."""
    digits = "".join(ch for ch in value if ch.isdigit())
    return {digits, "+" + digits, digits[-10:]} if digits else set()


def suggest_duplicates(*, customer: Customer, limit: int = 10) -> list[tuple[Customer, str]]:
    """Other customers who are likely the same person, with the reason. Never on a name alone."""
    found: dict[int, tuple[Customer, str]] = {}
    identities = list(customer.identities.all())
    for identity in identities:
        others = Identity.objects.none()
        reason = ""
        if identity.kind == Identity.Kind.EMAIL:
            # Case-insensitive: addresses imported or linked before normalisation may differ in
            # case. UPPER(value) = UPPER(…) matches the expression index identity_email_upper.
            others = Identity.objects.filter(kind=Identity.Kind.EMAIL, value__iexact=identity.value)
            reason = "same email address"
        elif identity.kind in (Identity.Kind.PHONE, Identity.Kind.WHATSAPP):
            tail = "".join(ch for ch in identity.value if ch.isdigit())[-9:]
            if len(tail) == PHONE_TAIL:
                # Matches the expression index identity_phone_tail (a LIKE '%…' would scan them all).
                others = Identity.objects.annotate(tail=Right("value", PHONE_TAIL)).filter(
                    kind__in=[Identity.Kind.PHONE, Identity.Kind.WHATSAPP], tail=tail
                )
                reason = "same phone number"
        for other in others.exclude(customer=customer).select_related("customer")[:limit]:
            if other.customer.merged_into_id is None:
                found.setdefault(other.customer_id, (other.customer, reason))
    # Phone numbers customers typed into attributes (forms, the widget) count too.
    for key in ("phone", "email"):
        typed = str(customer.attributes.get(key, "")).strip()
        if not typed:
            continue
        try:
            kind = Identity.Kind.PHONE if key == "phone" else Identity.Kind.EMAIL
            value = normalise_address(kind, typed)
        except InvalidAddress:
            continue
        for other in (
            Identity.objects.filter(kind=kind, value=value).exclude(customer=customer).select_related("customer")
        ):
            found.setdefault(other.customer_id, (other.customer, f"same {key} in profile"))
    return list(found.values())[:limit]
