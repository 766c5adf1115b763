"""The simulator page: play a customer on a simulated channel, and watch what Parley sends back.

Off (404) unless the simulator is on (``PARLEY_SIMULATOR``). Staff play customers on every
simulated channel, operators on their teams' ones; the page never creates a channel, and refuses
addresses of real customers and of other teams' customers (:func:`connectors.simulator.refusal`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.middleware import HtmxDetails

from connectors import simulator
from customers.services import InvalidAddress, normalise_address
from inbox.models import Channel, Message, Operator

ADDRESS_HINTS = {
    "phone": _("A phone number, such as +1 500 555 0006."),
    "email": _("An email address, such as ana@example.com."),
}
# Show only the latest of what was sent; the outbox of a long-running demo grows without end.
OUTBOX_LIMIT = 50


class HtmxRequest(HttpRequest):
    htmx: HtmxDetails
    user: Operator


View = Callable[..., HttpResponse]


def simulator_on(view: View) -> View:
    """404 while the simulator is off: in production mode, unless an admin switched it on."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not simulator.enabled():
            raise Http404(simulator.OFF)
        return view(request, *args, **kwargs)

    return wrapped


class ChannelChoice(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Channel) -> str:
        return f"{obj.name} ({obj.team})" if obj.team else obj.name


class CustomerSaysForm(forms.Form):
    channel = ChannelChoice(label=_("Channel"), queryset=Channel.objects.none(), empty_label=None)
    address = forms.CharField(
        label=_("From"),
        max_length=320,
        help_text=_("The customer's phone number, email address or id on that channel."),
    )
    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    subject = forms.CharField(label=_("Subject"), max_length=255, required=False, help_text=_("Email only."))
    text = forms.CharField(label=_("Message"), max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))
    # A tapped button of a message Parley sent (the outbox's choices): its id, sent with its title.
    choice = forms.RegexField(regex=r"^[\w:.\-]{1,64}$", required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, operator: Operator, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.operator = operator
        # Only the channels this operator may play on: another team's channel id is "not a valid choice".
        self.fields["channel"].queryset = simulator.channels_for(operator)  # type: ignore[attr-defined]
        # Set when the address is refused (a real customer, another team's): answered with a 403.
        self.refused = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        channel, address = cleaned.get("channel"), cleaned.get("address")
        if channel and address:
            kind = simulator.MEDIUM_IDENTITY.get(channel.medium, "phone")
            try:
                # Checked here, so that a typo is a form error and not an event that fails in the worker.
                normalise_address(kind, address)
            except InvalidAddress:
                self.add_error("address", ADDRESS_HINTS.get(kind, _("This address is not valid on that channel.")))
            else:
                reason = simulator.refusal(channel=channel, address=address, operator=self.operator)
                if reason:
                    self.refused = True
                    self.add_error("address", reason)
        if cleaned.get("subject") and (channel is None or channel.medium != Channel.Medium.EMAIL):
            cleaned["subject"] = ""
        return cleaned


class OutboxFilterForm(forms.Form):
    to = forms.CharField(label=_("Only to"), max_length=320, required=False)


def _outbox(operator: Operator, to: str) -> list[dict[str, Any]]:
    """Newest first, so the latest reply is at the top of the page, with labels for people."""
    senders, statuses = dict(Message.Sender.choices), dict(Message.Status.choices)
    return [
        {
            **row,
            "sender_label": senders.get(row["sender"], row["sender"]),
            "status_label": statuses.get(row["status"], row["status"]),
            "when": datetime.fromisoformat(row["at"]),
        }
        for row in reversed(simulator.outbox(to=to, operator=operator)[-OUTBOX_LIMIT:])
    ]


def _page(
    request: HtmxRequest, form: CustomerSaysForm, to: str, *, status: int = 200, sent: bool = False
) -> HttpResponse:
    template = "connectors/simulator.html"
    if request.htmx.target == "simulator":
        template += "#body"
    context = {
        "form": form,
        "to": to,
        "outbox": _outbox(request.user, to),
        "sent": sent,
        "outbox_limit": OUTBOX_LIMIT,
        "has_channels": form.fields["channel"].queryset.exists(),  # type: ignore[attr-defined]
    }
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
@simulator_on
@login_required
def simulator_page(request: HtmxRequest) -> HttpResponse:
    filter_form = OutboxFilterForm(request.GET)
    to = filter_form.cleaned_data["to"] if filter_form.is_valid() else ""
    operator = request.user
    if request.method != "POST":
        return _page(request, CustomerSaysForm(operator=operator, initial={"address": to} if to else None), to)
    form = CustomerSaysForm(request.POST, operator=operator)
    if not form.is_valid():
        return _page(request, form, to, status=403 if form.refused else 400)
    data = form.cleaned_data
    response = simulator.customer_says(
        channel=data["channel"],
        address=data["address"],
        text=data["text"],
        name=data["name"],
        subject=data["subject"],
        choice=data["choice"],
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
    fresh = CustomerSaysForm(
        operator=operator, initial={key: data[key] for key in ("channel", "address", "name", "subject")}
    )
    return _page(request, fresh, data["address"], sent=True)


@require_GET
@simulator_on
@login_required
def outbox(request: HtmxRequest) -> HttpResponse:
    """What Parley sent to the simulated customers the operator may see; polled by the page every two seconds."""
    filter_form = OutboxFilterForm(request.GET)
    if not filter_form.is_valid():
        return HttpResponse(_("The address filter is too long."), status=400)
    to = filter_form.cleaned_data["to"]
    context = {"to": to, "outbox": _outbox(request.user, to), "outbox_limit": OUTBOX_LIMIT}
    return render(request, "connectors/simulator.html#outbox", context)
