"""Customers: the team-scoped list, one customer with identities, the CRM's external id and typed
attributes, changes, notes, and upserts from a CRM.

A token sees a customer when its operator does in the UI (a conversation in their teams; every
customer for staff): :func:`inbox.selectors.customers.customer_for`, 404 otherwise. Attributes
are shown and written as on the profile: the typed attributes of the token's teams and global
ones, and free-form ones; another team's typed attributes are neither shown nor writable.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from api.auth import operator_of
from api.journal import record_write
from api.problems import Problem, declared, reject_unknown_query
from api.schemas import (
    AttributeScope,
    CustomerOut,
    CustomerPatch,
    NoteIn,
    NoteOut,
    Out,
    UpsertByKeysIn,
    UpsertIn,
)
from audit.models import Entry
from common.db import MAX_ID
from customers import crm
from customers.models import AttributeDefinition, Customer
from customers.services import add_customer_note, update_customer
from inbox.models import Operator
from inbox.selectors.customers import customer_for, customer_page, visible_customers

router = Router(tags=["customers"])
# Lists keyed on ids page with the last id seen: any id-shaped string is a position.
ID_CURSOR = r"^[0-9]{1,18}$"


class CustomerQuery(Schema):
    q: str = Field("", max_length=200, description="A name, or an address in any way it may be written.")
    cursor: str | None = Field(None, pattern=ID_CURSOR, description="``next_cursor`` of the previous page.")
    limit: int = Field(25, ge=1, le=100)


class CustomerPage(Out):
    items: list[CustomerOut]
    next_cursor: str | None


class NotePage(Out):
    items: list[NoteOut]
    next_cursor: str | None


class NoteQuery(Schema):
    cursor: str | None = Field(None, pattern=ID_CURSOR, description="``next_cursor`` of the previous page.")
    limit: int = Field(25, ge=1, le=100)


def _cursor(value: str | None) -> int | None:
    return int(value) if value else None


def _team_ids(operator: Operator) -> list[int] | None:
    return None if operator.is_staff else list(operator.team_ids)


def attribute_scope(operator: Operator) -> AttributeScope:
    """The attribute keys the operator sees (two queries, once per request)."""
    return AttributeScope(
        visible=frozenset(crm.definitions_for(_team_ids(operator)).values_list("key", flat=True)),
        defined=frozenset(AttributeDefinition.objects.values_list("key", flat=True)),
    )


def _customer(request: HttpRequest, customer_id: int) -> Customer:
    if not 1 <= customer_id <= MAX_ID:
        raise Customer.DoesNotExist
    return customer_for(operator_of(request), customer_id)


def _out(request: HttpRequest, customer: Customer) -> CustomerOut:
    return CustomerOut.of(customer, attribute_scope(operator_of(request)))


def _field_errors(exc: ValidationError, prefix: str) -> list[dict[str, str]]:
    if not hasattr(exc, "error_dict"):
        return [{"field": prefix.rstrip("."), "message": m, "code": "invalid"} for m in exc.messages]
    return [
        {"field": f"{prefix}{key}", "message": message, "code": "invalid"}
        for key, messages in exc.message_dict.items()
        for message in messages
    ]


@router.get("/customers", response={200: CustomerPage} | declared(), summary="List customers")
def list_customers(request: HttpRequest, query: Query[CustomerQuery]) -> CustomerPage:
    """Newest first; ``q`` finds a name or any identity ('+1 500 555 0006' finds '+15005550006')."""
    reject_unknown_query(request, CustomerQuery)
    page = customer_page(operator=operator_of(request), query=query.q, after=_cursor(query.cursor), size=query.limit)
    scope = attribute_scope(operator_of(request))
    return CustomerPage(
        items=[CustomerOut.of(c, scope) for c in page.customers],
        next_cursor=str(page.next_cursor) if page.next_cursor else None,
    )


# Before /customers/{customer_id}: Django tries the patterns in order, and that one takes any segment.
def _upsert(request: HttpRequest, payload: UpsertIn, external_id: str) -> Status[CustomerOut]:
    operator = operator_of(request)
    if not operator.is_staff:
        # A CRM's contact may be anyone's customer, or nobody's yet: staff tokens only, as the CSV import.
        raise PermissionDenied(_("Upserting customers takes a staff token."))
    try:
        done = crm.upsert_customer(
            external_id=external_id,
            email=payload.email,
            phone=payload.phone,
            name=payload.name,
            language=payload.language,
            attributes=payload.attributes,
            by=operator,
        )
    except crm.CrmConflict as exc:
        raise Problem(409, _("These keys name different customers."), errors=_field_errors(exc, "body.")) from None
    except ValidationError as exc:
        raise Problem(422, _("Some fields are not valid."), errors=_field_errors(exc, "body.")) from None
    return Status(201 if done.created else 200, _out(request, done.customer))


@router.put("/customers/by-external-id/{external_id}", response={200: CustomerOut, 201: CustomerOut} | declared())
def put_customer_by_external_id(request: HttpRequest, external_id: str, payload: UpsertIn) -> Status[CustomerOut]:
    """Create or update the customer the CRM knows by ``external_id`` (201 when created). Email and
    phone link to them unless they are someone else's (409, naming the field). Staff tokens only."""
    if not external_id.strip() or len(external_id) > crm.MAX_EXTERNAL_ID:
        raise Problem(
            422,
            _("Give an external id of 1 to 255 characters."),
            errors=[{"field": "path.external_id", "message": _("1 to 255 characters."), "code": "invalid"}],
        )
    return _upsert(request, payload, external_id)


@router.post("/customers/upsert", response={200: CustomerOut, 201: CustomerOut} | declared())
def upsert_customer(request: HttpRequest, payload: UpsertByKeysIn) -> Status[CustomerOut]:
    """Create or update the customer named by external id, else email, else phone (at least one);
    never merges two customers and never matches on a name. Staff tokens only."""
    return _upsert(request, payload, payload.external_id)


@router.get("/customers/by-external-id/{external_id}", response={200: CustomerOut} | declared())
def get_customer_by_external_id(request: HttpRequest, external_id: str) -> CustomerOut:
    """The customer the CRM knows by ``external_id``, if the token sees them."""
    customer = visible_customers(operator_of(request)).get(external_id=external_id.strip() or "\x00")
    return _out(request, customer)


@router.get("/customers/{customer_id}", response={200: CustomerOut} | declared())
def get_customer(request: HttpRequest, customer_id: int) -> CustomerOut:
    """A customer merged into another answers as the one they became."""
    return _out(request, _customer(request, customer_id))


def _attributes(operator: Operator, customer: Customer, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` applied to the customer's attributes, checked as on the profile."""
    scope = attribute_scope(operator)
    hidden = sorted(key for key in values if not scope.shows(key))
    if hidden:
        raise Problem(
            422,
            _("These attributes belong to another team."),
            errors=[
                {"field": f"body.attributes.{key}", "message": _("Another team's attribute."), "code": "forbidden"}
                for key in hidden
            ],
        )
    try:
        return crm.clean_attributes(values, current=customer.attributes or {}, team_ids=_team_ids(operator))
    except ValidationError as exc:
        raise Problem(422, _("Some attributes are not valid."), errors=_field_errors(exc, "body.attributes.")) from None


@router.patch("/customers/{customer_id}", response={200: CustomerOut} | declared())
def patch_customer(request: HttpRequest, customer_id: int, payload: CustomerPatch) -> CustomerOut:
    customer = _customer(request, customer_id)
    operator = operator_of(request)
    fields = payload.model_dump(exclude_unset=True)
    nulls = [name for name, value in fields.items() if value is None]
    if nulls:
        raise Problem(
            422,
            _("Leave a field out rather than send null."),
            errors=[{"field": f"body.{name}", "message": _("May not be null."), "code": "null"} for name in nulls],
        )
    if "attributes" in fields:
        fields["attributes"] = _attributes(operator, customer, fields["attributes"])
    if "external_id" in fields:
        fields["external_id"] = fields["external_id"].strip()
    if fields:
        try:
            with transaction.atomic():
                update_customer(customer=customer, **fields)
                record_write(request, action=Entry.Action.CHANGED, target=customer, details={"fields": sorted(fields)})
        except ValidationError as exc:  # the external id is another customer's
            raise Problem(
                409, _("Another customer has this external id."), errors=_field_errors(exc, "body.")
            ) from None
    return _out(request, _customer(request, customer.pk))


@router.get("/customers/{customer_id}/notes", response={200: NotePage} | declared())
def list_notes(request: HttpRequest, customer_id: int, query: Query[NoteQuery]) -> NotePage:
    """The customer's notes (shared by every team that has the customer), newest first."""
    reject_unknown_query(request, NoteQuery)
    customer = _customer(request, customer_id)
    notes = customer.notes.order_by("-pk")
    after = _cursor(query.cursor)
    if after is not None:
        notes = notes.filter(pk__lt=after)
    rows = list(notes[: query.limit + 1])
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return NotePage(items=[NoteOut.of(n) for n in rows], next_cursor=str(rows[-1].pk) if more else None)


@router.post("/customers/{customer_id}/notes", response={201: NoteOut} | declared())
def add_note(request: HttpRequest, customer_id: int, payload: NoteIn) -> Status[NoteOut]:
    customer = _customer(request, customer_id)
    if not payload.text.strip():
        raise Problem(
            422,
            _("The note is empty."),
            errors=[{"field": "body.text", "message": _("The note is empty."), "code": "blank"}],
        )
    with transaction.atomic():
        note = add_customer_note(customer=customer, author=operator_of(request), text=payload.text)
        record_write(
            request,
            action=Entry.Action.CREATED,
            target=note,
            target_type="customer note",
            target_label=f"note on {customer.display_name}",
            details={"customer": customer.pk},
        )
    return Status(201, NoteOut.of(note))
