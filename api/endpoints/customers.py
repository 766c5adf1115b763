"""Customers: the team-scoped list, one customer with identities and attributes, changes, notes.

A token sees a customer when its operator does in the UI (a conversation in their teams; every
customer for staff): :func:`inbox.selectors.customers.customer_for`, 404 otherwise.
"""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from api.auth import operator_of
from api.journal import record_write
from api.problems import Problem, declared, reject_unknown_query
from api.schemas import CustomerOut, CustomerPatch, NoteIn, NoteOut, Out
from audit.models import Entry
from common.db import MAX_ID
from customers.models import Customer
from customers.services import add_customer_note, update_customer
from inbox.selectors.customers import customer_for, customer_page

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


def _customer(request: HttpRequest, customer_id: int) -> Customer:
    if not 1 <= customer_id <= MAX_ID:
        raise Customer.DoesNotExist
    return customer_for(operator_of(request), customer_id)


@router.get("/customers", response={200: CustomerPage} | declared(), summary="List customers")
def list_customers(request: HttpRequest, query: Query[CustomerQuery]) -> CustomerPage:
    """Newest first; ``q`` finds a name or any identity ('+1 500 555 0006' finds '+15005550006')."""
    reject_unknown_query(request, CustomerQuery)
    page = customer_page(operator=operator_of(request), query=query.q, after=_cursor(query.cursor), size=query.limit)
    return CustomerPage(
        items=[CustomerOut.of(c) for c in page.customers],
        next_cursor=str(page.next_cursor) if page.next_cursor else None,
    )


@router.get("/customers/{customer_id}", response={200: CustomerOut} | declared())
def get_customer(request: HttpRequest, customer_id: int) -> CustomerOut:
    """A customer merged into another answers as the one they became."""
    return CustomerOut.of(_customer(request, customer_id))


@router.patch("/customers/{customer_id}", response={200: CustomerOut} | declared())
def patch_customer(request: HttpRequest, customer_id: int, payload: CustomerPatch) -> CustomerOut:
    customer = _customer(request, customer_id)
    fields = payload.model_dump(exclude_unset=True)
    if any(value is None for value in fields.values()):
        nulls = [name for name, value in fields.items() if value is None]
        raise Problem(
            422,
            _("Leave a field out rather than send null."),
            errors=[{"field": f"body.{name}", "message": _("May not be null."), "code": "null"} for name in nulls],
        )
    if fields:
        with transaction.atomic():
            update_customer(customer=customer, **fields)
            record_write(request, action=Entry.Action.CHANGED, target=customer, details={"fields": sorted(fields)})
    return CustomerOut.of(_customer(request, customer.pk))


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
