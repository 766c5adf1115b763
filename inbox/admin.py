from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from inbox import inbound, replies
from inbox.models import Channel, Conversation, InboundEvent, Message, Operator, OptOut, SavedReply, Team
from inbox.transport import ConfigurationError, connector_class


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    list_display = ["name", "timezone"]
    search_fields = ["name"]


@admin.register(Operator)
class OperatorAdmin(UserAdmin):  # type: ignore[type-arg]
    list_display = ["username", "display_name", "email", "is_staff", "presence", "capacity"]
    list_filter = ["is_staff", "presence", "teams"]
    fieldsets = (
        *UserAdmin.fieldsets,  # type: ignore[misc]
        ("Parley", {"fields": ("display_name", "teams", "capacity", "presence")}),
    )
    filter_horizontal = ["teams", "groups", "user_permissions"]


class ChannelForm(forms.ModelForm[Channel]):
    """Settings saved here are checked by the channel's connector, as ``channel add`` checks them."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "kind" not in cleaned or "settings" not in cleaned:
            return cleaned  # the field's own error says what is wrong
        values = cleaned["settings"] or {}
        if not isinstance(values, dict):
            raise forms.ValidationError(_("The settings must be a JSON object of names and values."))
        try:
            connector_class(cleaned["kind"]).validate_settings(values)
        except ConfigurationError as exc:
            raise forms.ValidationError(
                _("These settings cannot be used: %(reason)s"), params={"reason": str(exc)}
            ) from exc
        return cleaned


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin[Channel]):
    form = ChannelForm
    list_display = ["name", "kind", "medium", "team", "bot_enabled", "is_active"]
    list_filter = ["kind", "medium", "team", "is_active"]
    # ``state`` is the connector's bookkeeping (mailbox cursors, the last mailbox error): shown, never edited.
    readonly_fields = ["key", "medium", "state"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ["pk", "customer", "team", "status", "handler", "assignee", "priority", "last_message_at"]
    list_filter = ["status", "handler", "team", "priority"]
    raw_id_fields = ["customer", "assignee", "last_channel"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ["pk", "conversation", "kind", "direction", "sender", "channel", "status", "created_at"]
    list_filter = ["kind", "direction", "status", "channel"]
    raw_id_fields = ["conversation", "customer", "author"]
    search_fields = ["provider_id", "text"]


@admin.action(description="Replay the selected events")
def replay(modeladmin: admin.ModelAdmin[InboundEvent], request: HttpRequest, queryset: QuerySet[InboundEvent]) -> None:
    for event in queryset:
        inbound.replay_inbound_event(event=event)
    modeladmin.message_user(request, f"{queryset.count()} event(s) queued again.", messages.SUCCESS)


@admin.register(InboundEvent)
class InboundEventAdmin(admin.ModelAdmin[InboundEvent]):
    list_display = ["pk", "channel", "endpoint", "status", "attempts", "received_at", "short_error"]
    list_filter = ["status", "channel", "endpoint"]
    readonly_fields = [
        "channel",
        "endpoint",
        "dedupe_key",
        "headers",
        "content_type",
        "status",
        "attempts",
        "error",
        "received_at",
        "processed_at",
        "body_text",
    ]
    exclude = ["body"]
    actions = [replay]

    @admin.display(description="error")
    def short_error(self, event: InboundEvent) -> str:
        return event.error[:80]

    @admin.display(description="body")
    def body_text(self, event: InboundEvent) -> str:
        return bytes(event.body).decode("utf-8", errors="replace")[:20000]


@admin.register(OptOut)
class OptOutAdmin(admin.ModelAdmin[OptOut]):
    list_display = ["customer", "channel", "created_at", "reason"]
    raw_id_fields = ["customer"]


class SavedReplyForm(forms.ModelForm[SavedReply]):
    class Meta:
        model = SavedReply
        fields = ["title", "team", "text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 10, "cols": 80, "dir": "auto"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = ", ".join(f"{{{name}}} ({meaning})" for name, meaning in replies.PLACEHOLDERS.items())
        self.fields["text"].help_text = _("Placeholders, filled in for the conversation: %(names)s.") % {"names": names}


@admin.register(SavedReply)
class SavedReplyAdmin(admin.ModelAdmin[SavedReply]):
    """Saved replies of every team; writes go through :mod:`inbox.replies`, which holds the rule."""

    form = SavedReplyForm
    list_display = ["title", "team", "created_by", "updated_at"]
    list_filter = ["team"]
    search_fields = ["title", "text"]
    list_select_related = ["team", "created_by"]

    def save_model(self, request: HttpRequest, obj: SavedReply, form: Any, change: bool) -> None:
        # The form has validated the fields and the title's uniqueness (the model's constraints).
        by = request.user if isinstance(request.user, Operator) else None
        if change:
            replies.update_saved_reply(saved_reply=obj, title=obj.title, text=obj.text, team=obj.team, by=by)
        else:
            saved = replies.create_saved_reply(title=obj.title, text=obj.text, team=obj.team, by=by)
            # The admin goes on with the form's instance (its history entry, the redirect).
            obj.pk, obj.created_by, obj.created_at, obj.updated_at = (
                saved.pk,
                saved.created_by,
                saved.created_at,
                saved.updated_at,
            )
            obj._state.adding = False
        warning = replies.unknown_placeholders_warning(obj.text)
        if warning:
            self.message_user(request, warning, messages.WARNING)

    def delete_model(self, request: HttpRequest, obj: SavedReply) -> None:
        replies.delete_saved_reply(saved_reply=obj, by=request.user if isinstance(request.user, Operator) else None)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SavedReply]) -> None:
        by = request.user if isinstance(request.user, Operator) else None
        for saved_reply in queryset.select_related("team"):
            replies.delete_saved_reply(saved_reply=saved_reply, by=by)
