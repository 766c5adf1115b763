"""Customer pages: the team-scoped list, the profile, hand-linked identities, merges and their undo."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from customers.models import Customer, CustomerMerge
from customers.services import MergeError, add_customer_note, link_identity, update_customer
from inbox.forms import CustomerForm, CustomerNoteForm, CustomerSearchForm, LinkIdentityForm, MergeForm
from inbox.models import Operator
from inbox.selectors.customers import (
    attribute_definitions,
    can_see_customer,
    customer_for,
    customer_page,
    customer_profile,
    merge_preview,
)
from inbox.services.customers import merge_customers, undo_merge


class OperatorRequest(HttpRequest):
    htmx: HtmxDetails
    user: Operator


def _profile_url(customer: Customer) -> str:
    return reverse("customers:profile", args=[customer.pk])


@require_GET
@login_required
def customer_list(request: OperatorRequest) -> HttpResponse:
    form = CustomerSearchForm(request.GET)
    if not form.is_valid():
        return render(request, "customers/list.html", {"form": form, "page": None}, status=400)
    page = customer_page(
        operator=request.user,
        query=form.cleaned_data["q"] or "",
        after=form.cleaned_data["after"],
        size=settings.PARLEY_PAGE_SIZE,
    )
    template = "customers/list.html"
    if request.htmx and form.cleaned_data["after"]:
        template += "#rows"
    elif request.htmx.target == "customer-results":
        template += "#results"
    return render(request, template, {"form": form, "page": page, "query": form.cleaned_data["q"] or ""})


def _customer_form(request: OperatorRequest, customer: Customer, data: Any = None) -> CustomerForm:
    """The details form with the typed attributes the operator's teams see."""
    definitions, defined = attribute_definitions(request.user)
    return CustomerForm(data, customer=customer, definitions=definitions, defined_keys=defined)


def _render_profile(request: OperatorRequest, customer: Customer, *, status: int = 200, **forms: Any) -> HttpResponse:
    profile = customer_profile(operator=request.user, customer=customer)
    context: dict[str, Any] = {
        "profile": profile,
        "customer_form": CustomerForm(
            customer=customer, definitions=profile.definitions, defined_keys=profile.defined_keys
        ),
        "note_form": CustomerNoteForm(),
        "identity_form": LinkIdentityForm(customer=customer),
        **forms,
    }
    return render(request, "customers/profile.html", context, status=status)


@require_GET
@login_required
def profile(request: OperatorRequest, customer_id: int) -> HttpResponse:
    customer = customer_for(request.user, customer_id)
    if customer.pk != customer_id:
        return redirect(_profile_url(customer))
    return _render_profile(request, customer)


@require_POST
@login_required
def update(request: OperatorRequest, customer_id: int) -> HttpResponse:
    customer = customer_for(request.user, customer_id)
    form = _customer_form(request, customer, request.POST)
    if not form.is_valid():
        return _render_profile(request, customer, status=400, customer_form=form)
    try:
        update_customer(customer=customer, **form.cleaned_data)
    except ValidationError as exc:  # another customer took the external id a moment ago
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return _render_profile(request, customer, status=409, customer_form=form)
    messages.success(request, _("Profile saved."))
    return redirect(_profile_url(customer))


def _render_notes(
    request: OperatorRequest, customer: Customer, form: CustomerNoteForm, *, status: int = 200
) -> HttpResponse:
    """The notes card alone for htmx, else the whole profile."""
    if not request.htmx:
        return _render_profile(request, customer, status=status, note_form=form)
    notes = {"customer": customer, "notes": list(customer.notes.select_related("author"))}
    return render(request, "customers/profile.html#notes", {"profile": notes, "note_form": form}, status=status)


@require_POST
@login_required
def add_note(request: OperatorRequest, customer_id: int) -> HttpResponse:
    customer = customer_for(request.user, customer_id)
    form = CustomerNoteForm(request.POST)
    if not form.is_valid():
        return _render_notes(request, customer, form, status=400)
    add_customer_note(customer=customer, author=request.user, text=form.cleaned_data["text"])
    if not request.htmx:
        return redirect(_profile_url(customer) + "#notes")
    return _render_notes(request, customer, CustomerNoteForm())


@require_POST
@login_required
def add_identity(request: OperatorRequest, customer_id: int) -> HttpResponse:
    customer = customer_for(request.user, customer_id)
    form = LinkIdentityForm(request.POST, customer=customer)
    if not form.is_valid():
        owner = form.owner
        return _render_profile(
            request,
            customer,
            status=409 if owner is not None else 400,
            identity_form=form,
            # Offer a merge only with a customer this operator may see.
            identity_owner=owner if owner is not None and can_see_customer(request.user, owner) else None,
        )
    identity = link_identity(customer=customer, kind=form.cleaned_data["kind"], value=form.cleaned_data["value"])
    if identity.customer_id != customer.pk:
        # Someone else took the address between the check and the insert: never move it silently.
        form.add_error("value", _("This address belongs to another customer."))
        return _render_profile(request, customer, status=409, identity_form=form)
    messages.success(request, _("Added %(address)s.") % {"address": identity.value})
    return redirect(_profile_url(customer) + "#identities")


@require_http_methods(["GET", "POST"])
@login_required
def merge(request: OperatorRequest, customer_id: int, source_id: int) -> HttpResponse:
    """Merge ``source`` into this customer, after a confirmation that says what will move."""
    target = customer_for(request.user, customer_id)
    source = customer_for(request.user, source_id, follow_merges=False)
    form = MergeForm(request.POST if request.method == "POST" else None)
    status = 200
    if form.is_bound and form.is_valid():
        try:
            merge_customers(source=source, target=target, by=request.user)
        except MergeError as exc:
            form.add_error(None, _merge_error(exc))
            status = 409
        else:
            messages.success(
                request,
                _("%(source)s was merged into %(target)s. You can undo it under Merge history.")
                % {"source": source.display_name, "target": target.display_name},
            )
            return redirect(_profile_url(target))
    elif form.is_bound:
        status = 400
    preview = merge_preview(source=source, target=target)
    return render(request, "customers/merge.html", {"preview": preview, "form": form}, status=status)


def _merge_error(exc: MergeError) -> str:
    """The service's reason, in the operator's language."""
    reason = str(exc)
    if "themselves" in reason:
        return _("A customer cannot be merged into themselves.")
    if "already undone" in reason:
        return _("This merge was already undone.")
    if "already merged" in reason:
        return _("One of these customers was already merged into another.")
    return reason


@require_POST
@login_required
def unmerge(request: OperatorRequest, customer_id: int, merge_id: int) -> HttpResponse:
    customer = customer_for(request.user, customer_id)
    record = get_object_or_404(CustomerMerge.objects.select_related("source", "target"), pk=merge_id, target=customer)
    try:
        source = undo_merge(merge=record, by=request.user)
    except MergeError as exc:
        messages.error(request, _merge_error(exc))
        return _render_profile(request, customer, status=409)
    messages.success(
        request,
        _("The merge was undone: %(source)s is a separate customer again.") % {"source": source.display_name},
    )
    return HttpResponseRedirect(_profile_url(customer) + "#merges")
