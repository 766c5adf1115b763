from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from audit.admin import AuditedAdmin
from inbox.models import Channel, Conversation, InboundEvent, Message, Operator, OptOut, SavedReply, Team
from inbox.services import inbound, replies
from inbox.transport import ConfigurationError, connector_class, kinds


@admin.register(Team)
class TeamAdmin(AuditedAdmin, admin.ModelAdmin[Team]):
    list_display = ["name", "timezone"]
    search_fields = ["name"]


@admin.register(Operator)
class OperatorAdmin(AuditedAdmin, UserAdmin):  # type: ignore[type-arg]
    list_display = ["username", "display_name", "email", "is_staff", "presence", "capacity"]
    list_filter = ["is_staff", "presence", "teams"]
    fieldsets = (
        *UserAdmin.fieldsets,  # type: ignore[misc]
        ("Parley", {"fields": ("display_name", "teams", "capacity", "presence")}),
    )
    filter_horizontal = ["teams", "groups", "user_permissions"]


def secret_keys(kind: str | None) -> tuple[str, ...]:
    """The setting keys that are secrets for a kind of channel (for every kind, when not known yet)."""
    if kind is None:
        return tuple(sorted({key for name in kinds() for key in connector_class(name).secret_settings}))
    try:
        return tuple(connector_class(kind).secret_settings)
    except ConfigurationError:
        return ()


class ChannelForm(forms.ModelForm[Channel]):
    """Settings saved here are checked by the channel's connector, as ``channel add`` checks them.

    Secret settings (the connector's ``secret_settings``) never come back to the browser: the JSON
    shows the others, each secret has its own write-only field that says whether it is set, an
    empty one keeps the stored value and "Remove" deletes it. ``ChannelAdmin.get_form`` declares
    those fields for the channel's kind.
    """

    secret_keys: tuple[str, ...] = ()
    changed_secrets: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.settings or {}
        self.initial["settings"] = {k: v for k, v in stored.items() if k not in self.secret_keys}
        self.changed_secrets = []

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "kind" not in cleaned or "settings" not in cleaned:
            return cleaned  # the field's own error says what is wrong
        values = cleaned["settings"] or {}
        if not isinstance(values, dict):
            raise forms.ValidationError(_("The settings must be a JSON object of names and values."))
        stored = self.instance.settings if self.instance.pk else {}
        merged = dict(values)
        for key in self.secret_keys:
            typed, remove = cleaned.get(f"secret_{key}") or "", cleaned.get(f"clear_{key}")
            if typed and key not in secret_keys(cleaned["kind"]):
                self.add_error(
                    f"secret_{key}", _("%(kind)s channels have no such setting.") % {"kind": cleaned["kind"]}
                )
            if key in values:  # typed into the JSON: a new value
                pass
            elif typed:
                merged[key] = typed
            elif key in stored and not remove:
                merged[key] = stored[key]
        try:
            connector_class(cleaned["kind"]).validate_settings(merged)  # may fill in a default secret
        except ConfigurationError as exc:
            raise forms.ValidationError(
                _("These settings cannot be used: %(reason)s"), params={"reason": str(exc)}
            ) from exc
        keys = set(self.secret_keys) | set(secret_keys(cleaned["kind"]))
        cleaned["settings"] = merged
        self.changed_secrets = sorted(key for key in keys if merged.get(key) != stored.get(key))
        return cleaned


@admin.register(Channel)
class ChannelAdmin(AuditedAdmin, admin.ModelAdmin[Channel]):
    form = ChannelForm
    list_display = ["name", "kind", "medium", "team", "bot_enabled", "is_active"]
    list_filter = ["kind", "medium", "team", "is_active"]
    # ``state`` is the connector's bookkeeping (mailbox cursors, the last mailbox error): shown, never edited.
    readonly_fields = ["key", "medium", "state"]

    def get_form(self, request: HttpRequest, obj: Channel | None = None, change: bool = False, **kwargs: Any) -> Any:
        keys = secret_keys(obj.kind if obj is not None else None)
        stored = obj.settings if obj is not None else {}
        fields: dict[str, Any] = {"secret_keys": keys}
        for key in keys:
            is_set = bool(stored.get(key))
            fields[f"secret_{key}"] = forms.CharField(
                label=key,
                required=False,
                strip=False,
                widget=forms.PasswordInput(
                    render_value=False,
                    attrs={"autocomplete": "new-password", "placeholder": "••• set" if is_set else ""},
                ),
                help_text=_("••• set. Leave empty to keep it; type a new value to replace it.")
                if is_set
                else _("Not set."),
            )
            if is_set:
                fields[f"clear_{key}"] = forms.BooleanField(label=_("Remove %(key)s") % {"key": key}, required=False)
        kwargs["form"] = type("ChannelForm", (self.form,), fields)
        return super().get_form(request, obj, change, **kwargs)

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> Any:
        """Django's message without the secret fields, plus the names (never the values) of changed secrets."""
        message = super().construct_change_message(request, form, formsets, add)
        hidden = {str(field.label) for name, field in form.fields.items() if name.startswith(("secret_", "clear_"))}
        kept = []
        for part in message:
            changed = part.get("changed")
            if changed is not None:
                changed["fields"] = [name for name in changed["fields"] if name not in hidden]
                if not changed["fields"]:
                    continue
            kept.append(part)
        if form.changed_secrets:
            labels = [str(_("secret %(key)s") % {"key": key}) for key in form.changed_secrets]
            kept.append({"changed": {"fields": labels, "secrets": form.changed_secrets}})
        return kept


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
    """Saved replies of every team; writes go through :mod:`inbox.services.replies`, which holds the rule."""

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
