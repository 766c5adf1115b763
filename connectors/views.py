"""The simulator page: play a customer on any medium, and watch what Parley sends back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.middleware import HtmxDetails

from connectors import simulator
from customers.services import InvalidAddress, normalise_address
from inbox.models import Channel, Message, Operator

# The media a person can play from the page (voice needs a call, not a text box).
MEDIA = [
    (medium, label)
    for medium, label in Channel.Medium.choices
    if medium in simulator.MEDIUM_IDENTITY and medium != "voice"
]
ADDRESS_HINTS = {
    "phone": _("A phone number, such as +1 500 555 0006."),
    "email": _("An email address, such as ana@example.com."),
}
# Show only the latest of what was sent; the outbox of a long-running demo grows without end.
OUTBOX_LIMIT = 50


class HtmxRequest(HttpRequest):
    htmx: HtmxDetails
    user: Operator


class CustomerSaysForm(forms.Form):
    medium = forms.ChoiceField(label=_("Channel"), choices=MEDIA, initial="sms")
    address = forms.CharField(
        label=_("From"),
        max_length=320,
        help_text=_("The customer's phone number, email address or id on that channel."),
    )
    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    subject = forms.CharField(label=_("Subject"), max_length=255, required=False, help_text=_("Email only."))
    text = forms.CharField(label=_("Message"), max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        medium, address = cleaned.get("medium"), cleaned.get("address")
        if medium and address:
            kind = simulator.MEDIUM_IDENTITY[medium]
            try:
                # Checked here, so that a typo is a form error and not an event that fails in the worker.
                normalise_address(kind, address)
            except InvalidAddress:
                self.add_error("address", ADDRESS_HINTS.get(kind, _("This address is not valid on that channel.")))
        if cleaned.get("subject") and medium != "email":
            cleaned["subject"] = ""
        return cleaned


class OutboxFilterForm(forms.Form):
    to = forms.CharField(label=_("Only to"), max_length=320, required=False)


def _outbox(to: str) -> list[dict[str, Any]]:
    """Newest first, so the latest reply is at the top of the page, with labels for people."""
    senders, statuses = dict(Message.Sender.choices), dict(Message.Status.choices)
    return [
        {
            **row,
            "sender_label": senders.get(row["sender"], row["sender"]),
            "status_label": statuses.get(row["status"], row["status"]),
            "when": datetime.fromisoformat(row["at"]),
        }
        for row in reversed(simulator.outbox(to=to)[-OUTBOX_LIMIT:])
    ]


def _page(
    request: HtmxRequest, form: CustomerSaysForm, to: str, *, status: int = 200, sent: bool = False
) -> HttpResponse:
    template = "connectors/simulator.html"
    if request.htmx.target == "simulator":
        template += "#body"
    context = {"form": form, "to": to, "outbox": _outbox(to), "sent": sent, "outbox_limit": OUTBOX_LIMIT}
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def simulator_page(request: HtmxRequest) -> HttpResponse:
    filter_form = OutboxFilterForm(request.GET)
    to = filter_form.cleaned_data["to"] if filter_form.is_valid() else ""
    if request.method != "POST":
        return _page(request, CustomerSaysForm(initial={"address": to} if to else None), to)
    form = CustomerSaysForm(request.POST)
    if not form.is_valid():
        return _page(request, form, to, status=400)
    data = form.cleaned_data
    response = simulator.customer_says(
        medium=data["medium"], address=data["address"], text=data["text"], name=data["name"], subject=data["subject"]
    )
    if response.status_code >= 400:
        form.add_error(
            None,
            _("Parley refused the message: %(reason)s") % {"reason": response.content.decode(errors="replace").strip()},
        )
        return _page(request, form, to, status=400)
    if not request.htmx:
        return redirect(reverse("simulator:page") + "?" + urlencode({"to": data["address"]}))
    # Keep who is writing, clear what they wrote, so the next message is one line away.
    fresh = CustomerSaysForm(initial={key: data[key] for key in ("medium", "address", "name", "subject")})
    return _page(request, fresh, data["address"], sent=True)


@require_GET
@login_required
def outbox(request: HtmxRequest) -> HttpResponse:
    """What Parley sent to simulated customers; polled by the page every two seconds."""
    filter_form = OutboxFilterForm(request.GET)
    if not filter_form.is_valid():
        return HttpResponse(_("The address filter is too long."), status=400)
    to = filter_form.cleaned_data["to"]
    return render(
        request, "connectors/simulator.html#outbox", {"to": to, "outbox": _outbox(to), "outbox_limit": OUTBOX_LIMIT}
    )
