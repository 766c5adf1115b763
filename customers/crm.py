"""The customer data a CRM shares: external ids, typed custom attributes, upserts, the CRM link.

A CRM knows its contacts by its own key (``Customer.external_id``), an email address or a phone
number. :func:`upsert_customer` finds the one customer those name — by external id, then email,
then phone — or creates one; it never merges two existing customers (that is an operator's
decision, with a preview and an undo), and when the keys it was given point at two different
customers it refuses with a :class:`CrmConflict` naming the field. A name is never a key.

Custom attributes are defined by staff (:class:`customers.models.AttributeDefinition`, typed);
:func:`clean_attributes` turns what a person or a CRM sent into stored values or per-key errors.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from audit.models import Entry
from audit.services import record
from common.events import send_on_commit
from customers.models import AttributeDefinition, Customer, Identity
from customers.services import InvalidAddress, normalise_address
from customers.signals import customer_created, customer_updated

MAX_TEXT = 1000
MAX_EXTERNAL_ID = 255
LINK = URLValidator(schemes=["http", "https"])


class CrmConflict(ValidationError):
    """The keys given name two different customers, or clash with what a customer has already.

    ``message_dict`` maps each offending field to its message (the API shows them as field errors).
    """


def definitions_for(team_ids: Iterable[int] | None) -> QuerySet[AttributeDefinition]:
    """The attribute definitions someone in ``team_ids`` sees (None: all of them, as staff do)."""
    definitions = AttributeDefinition.objects.all()
    if team_ids is not None:
        definitions = definitions.filter(Q(team__isnull=True) | Q(team_id__in=list(team_ids)))
    return definitions.order_by("position", "label")


def clean_value(definition: AttributeDefinition, raw: Any) -> Any:
    """One attribute value as stored (None: remove it); raises ``ValidationError`` in words for people."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    kind = definition.type
    if kind == AttributeDefinition.Type.NUMBER:
        if isinstance(raw, bool):
            raise ValidationError(_("Enter a number."))
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation as exc:
            raise ValidationError(_("Enter a number.")) from exc
        if not number.is_finite():
            raise ValidationError(_("Enter a number."))
        return int(number) if number == number.to_integral_value() else float(number)
    text = str(raw).strip()
    if len(text) > MAX_TEXT:
        raise ValidationError(_("At most %(count)d characters.") % {"count": MAX_TEXT})
    if kind == AttributeDefinition.Type.DATE:
        try:
            return datetime.date.fromisoformat(text).isoformat()
        except ValueError as exc:
            raise ValidationError(_("Enter a date as YYYY-MM-DD.")) from exc
    if kind == AttributeDefinition.Type.CHOICE:
        if text not in definition.choices:
            raise ValidationError(
                _("Choose one of: %(choices)s.") % {"choices": ", ".join(str(c) for c in definition.choices)}
            )
        return text
    if kind == AttributeDefinition.Type.LINK:
        try:
            LINK(text)
        except ValidationError as exc:
            raise ValidationError(_("Enter a web address starting with https:// or http://.")) from exc
        return text
    return text


def clean_attributes(
    values: Mapping[str, Any], *, current: Mapping[str, Any], team_ids: Iterable[int] | None = None
) -> dict[str, Any]:
    """``current`` with ``values`` applied: defined keys validated and typed, None or '' removes a key.

    Keys nobody defined are kept as text (free-form attributes people and integrations add). Raises
    ``ValidationError`` with one message per key.
    """
    definitions = {d.key: d for d in definitions_for(team_ids)}
    result = dict(current)
    errors: dict[str, list[str]] = {}
    for key, raw in values.items():
        key = str(key).strip()
        if not key or len(key) > 100:
            errors[key or "attributes"] = [_("An attribute key must have 1 to 100 characters.")]
            continue
        definition = definitions.get(key)
        try:
            value = clean_value(definition, raw) if definition else _free_value(raw)
        except ValidationError as exc:
            errors[key] = list(exc.messages)
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    if errors:
        raise ValidationError(errors)
    return result


def _free_value(raw: Any) -> Any:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, (bool, int, float)):
        return raw
    text = str(raw).strip()
    if len(text) > MAX_TEXT:
        raise ValidationError(_("At most %(count)d characters.") % {"count": MAX_TEXT})
    return text


def clean_external_id(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_EXTERNAL_ID:
        raise ValidationError({"external_id": [_("At most %(count)d characters.") % {"count": MAX_EXTERNAL_ID}]})
    return value


# -- upsert ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upserted:
    customer: Customer
    created: bool
    changed: tuple[str, ...]


def _owner(customer: Customer) -> Customer:
    while customer.merged_into_id is not None:  # follow a merge: the one who stayed
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def _by_identity(kind: str, value: str) -> Customer | None:
    identity = Identity.objects.select_related("customer").filter(kind=kind, value=value).first()
    return _owner(identity.customer) if identity else None


def _normalised(kind: str, value: str) -> str:
    if not value.strip():
        return ""
    try:
        return normalise_address(kind, value)
    except InvalidAddress as exc:
        message = _("Enter a valid email address.") if kind == "email" else _("Enter a valid phone number.")
        raise ValidationError({kind: [message]}) from exc


def _match(external_id: str, email: str, phone: str) -> Customer | None:
    """The one customer the keys name, in the order external id, email, phone; a clash is a conflict."""
    found: list[tuple[str, Customer]] = []
    if external_id:
        by_id = Customer.objects.active().filter(external_id=external_id).first()
        if by_id is not None:
            found.append(("external_id", by_id))
    if email:
        by_email = _by_identity(Identity.Kind.EMAIL, email)
        if by_email is not None:
            found.append(("email", by_email))
    if phone:
        by_phone = _by_identity(Identity.Kind.PHONE, phone)
        if by_phone is not None:
            found.append(("phone", by_phone))
    if not found:
        return None
    first_field, customer = found[0]
    errors = {
        field: [
            _("This belongs to another customer (#%(other)s) than the %(first)s does (#%(customer)s).")
            % {"other": other.pk, "first": first_field, "customer": customer.pk}
        ]
        for field, other in found[1:]
        if other.pk != customer.pk
    }
    if external_id and customer.external_id and customer.external_id != external_id:
        errors["external_id"] = [
            _("Customer #%(customer)s has another external id (%(current)s).")
            % {"customer": customer.pk, "current": customer.external_id}
        ]
    if errors:
        raise CrmConflict(errors)
    return customer


def upsert_customer(
    *,
    external_id: str = "",
    email: str = "",
    phone: str = "",
    name: str = "",
    language: str = "",
    attributes: Mapping[str, Any] | None = None,
    team_ids: Iterable[int] | None = None,
    by: Any = None,
) -> Upserted:
    """Create or update the customer named by external id, else email, else phone.

    Never merges two customers and never matches on a name: keys that point at two different
    customers raise :class:`CrmConflict`. A new email or phone is linked to the customer unless it
    is someone else's (then: conflict). Attributes are validated (``ValidationError`` per key).
    Recorded in the audit log; sends ``customer.created`` or ``customer.updated`` after commit.
    """
    external_id = clean_external_id(external_id)
    email_value = _normalised(Identity.Kind.EMAIL, email)
    phone_value = _normalised(Identity.Kind.PHONE, phone)
    if not (external_id or email_value or phone_value):
        raise ValidationError({"external_id": [_("Give an external id, an email address or a phone number.")]})
    try:
        with transaction.atomic():
            return _upsert(external_id, email_value, phone_value, name, language, attributes, team_ids, by)
    except IntegrityError:
        pass
    # Another upsert created the same external id or address a moment ago: match again, once.
    try:
        with transaction.atomic():
            return _upsert(external_id, email_value, phone_value, name, language, attributes, team_ids, by)
    except IntegrityError as exc:
        raise CrmConflict({"external_id": [_("Another change to this customer raced this one; try again.")]}) from exc


def _upsert(
    external_id: str,
    email: str,
    phone: str,
    name: str,
    language: str,
    attributes: Mapping[str, Any] | None,
    team_ids: Iterable[int] | None,
    by: Any,
) -> Upserted:
    customer = _match(external_id, email, phone)
    created = customer is None
    if customer is None:
        customer = Customer(external_id=external_id)
    else:
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
    changed: list[str] = []
    if created or (external_id and not customer.external_id):
        customer.external_id = external_id
        changed.append("external_id")
    name = " ".join(name.split())[:200]
    if name and name != customer.name:
        customer.name = name
        changed.append("name")
    if language and language != customer.language:
        customer.language = language[:16]
        changed.append("language")
    if attributes:
        try:
            cleaned = clean_attributes(attributes, current=customer.attributes, team_ids=team_ids)
        except ValidationError as exc:
            raise ValidationError(
                {f"attributes.{key}": messages for key, messages in exc.message_dict.items()}
            ) from exc
        if cleaned != customer.attributes:
            customer.attributes = cleaned
            changed.append("attributes")
    if created:
        customer.save()
    elif changed:
        customer.save(update_fields=[*changed, "updated_at"])
    for kind, value in ((Identity.Kind.EMAIL, email), (Identity.Kind.PHONE, phone)):
        if value and not Identity.objects.filter(kind=kind, value=value).exists():
            # A CRM's word, not the provider's: unverified until the customer writes from it.
            Identity.objects.create(customer=customer, kind=kind, value=value, verified=False)
            changed.append(kind)
    if created:
        send_on_commit(customer_created, customer_id=customer.pk)
    elif changed:
        send_on_commit(customer_updated, customer_id=customer.pk, fields=changed)
    if created or changed:
        record(
            action=Entry.Action.CREATED if created else Entry.Action.CHANGED,
            actor=by,
            target=customer,
            details={"fields": changed, "via": "upsert"},
        )
    return Upserted(customer=customer, created=created, changed=tuple(changed))


# -- the CRM link ------------------------------------------------------------------------------------

PLACEHOLDER = "{external_id}"
_SCHEME = re.compile(r"^https?://[^/\s{}]+", re.IGNORECASE)


def check_link_template(template: str) -> str:
    """A CRM link template as stored; raises ``ValidationError`` unless it is an http(s) URL with the placeholder."""
    template = template.strip()
    if not template:
        return ""
    if not _SCHEME.match(template) or PLACEHOLDER not in template:
        raise ValidationError(
            _("Write a web address starting with https:// that contains %(placeholder)s.")
            % {"placeholder": PLACEHOLDER}
        )
    try:
        LINK(template.replace(PLACEHOLDER, "x"))
    except ValidationError as exc:
        raise ValidationError(_("This is not a valid web address.")) from exc
    return template


def crm_link(template: str, external_id: str) -> str:
    """The customer's page in the CRM ('' when either is blank); the id is percent-encoded, so it
    can never change the host or add a scheme."""
    if not template or not external_id or not _SCHEME.match(template):
        return ""
    return template.replace(PLACEHOLDER, quote(external_id, safe=""))
