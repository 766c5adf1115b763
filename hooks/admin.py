"""Webhooks out in the admin (staff only): subscriptions, their secrets shown once, the delivery log, replay."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from hooks import services
from hooks.models import Delivery, Subscription


class SubscriptionForm(forms.ModelForm[Subscription]):
    url = forms.CharField(label=_("URL"), max_length=1000, help_text=_("https://, outside private networks."))
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=[(name, name) for name in services.EVENT_NAMES],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Subscription
        fields = ["name", "url", "events", "team", "is_active"]

    def clean_url(self) -> str:
        return services.check_url(str(self.cleaned_data["url"]))

    def clean_events(self) -> list[str]:
        try:
            return services.check_events(self.cleaned_data["events"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin[Subscription]):
    form = SubscriptionForm
    list_display = ["name", "url", "team", "is_active", "disabled_reason", "consecutive_failures", "log"]
    list_filter = ["is_active", "team"]
    search_fields = ["name", "url"]
    readonly_fields = ["disabled_reason", "consecutive_failures", "failing_since", "created_at"]
    actions = ["rotate_secret"]

    @admin.display(description=_("Delivery log"))
    def log(self, obj: Subscription) -> str:
        url = reverse("admin:hooks_delivery_changelist") + f"?subscription__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("Deliveries"))

    def save_model(self, request: HttpRequest, obj: Subscription, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            fields = {name: data[name] for name in form.changed_data if name in data}
            services.update_subscription(subscription=obj, by=request.user, **fields)
            return
        created, secret = services.create_subscription(
            name=data["name"], url=data["url"], events=data["events"], team=data["team"], by=request.user
        )
        obj.pk = created.pk
        if not data.get("is_active", True):
            services.update_subscription(subscription=created, by=request.user, is_active=False)
        self._show_secret(request, secret)

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None  # the service records it in the audit log

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None

    def _show_secret(self, request: HttpRequest, secret: str) -> None:
        messages.warning(
            request,
            _("The signing secret, shown this once (copy it into the receiver): %(secret)s") % {"secret": secret},
        )

    @admin.action(description=_("Rotate the signing secret (shown once)"))
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        for subscription in queryset:
            secret = services.rotate_secret(subscription=subscription, by=request.user)
            messages.warning(
                request,
                _("New secret of %(name)s, shown this once: %(secret)s")
                % {"name": subscription.name, "secret": secret},
            )


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin[Delivery]):
    """The delivery log of every subscription (filter by one), with replay."""

    list_display = [
        "id",
        "subscription",
        "event",
        "status",
        "attempts",
        "response_code",
        "latency_ms",
        "last_attempt_at",
        "next_attempt_at",
        "error",
    ]
    list_filter = ["status", "event", "subscription"]
    search_fields = ["event_id", "ordering_key"]
    list_select_related = ["subscription"]
    actions = ["replay"]
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    @admin.action(description=_("Replay: send again (same webhook-id)"), permissions=["view"])
    def replay(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = services.replay_deliveries(deliveries=queryset, by=request.user)
        messages.success(request, _("%(count)d deliveries queued again.") % {"count": count})
