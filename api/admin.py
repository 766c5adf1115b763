"""API tokens in Django's admin: staff make operator and team integration tokens and revoke them.

A token's text is shown once, in the message after it is made; nothing else ever shows it (only
its digest is stored). Tokens are never edited or deleted here, only revoked, so the audit log's
references stay meaningful.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from api import tokens
from api.models import ApiToken
from inbox.models import Operator, Team


class NewTokenForm(forms.ModelForm[ApiToken]):
    """Either an operator's token or a team integration's (exactly one of the two)."""

    operator = forms.ModelChoiceField(
        queryset=Operator.objects.filter(is_active=True),
        required=False,
        label=_("Operator"),
        help_text=_("The token acts as this operator, with their teams."),
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.all(),
        required=False,
        label=_("Team integration"),
        help_text=_("Or: the token acts as an integration of this team (an account of its own)."),
    )

    class Meta:
        model = ApiToken
        fields = ["name"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("operator")) == bool(data.get("team")):
            raise forms.ValidationError(_("Choose an operator or a team, not both."))
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    list_display = ["name", "prefix", "scope_label", "created_by", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "team"]
    search_fields = ["name", "prefix", "operator__username"]
    readonly_fields = ["name", "prefix", "operator", "team", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = NewTokenForm
            kwargs["fields"] = ["name"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        if obj is None:
            return ["name", "operator", "team"]
        return self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            return  # nothing of a token changes here; revoke it instead
        by = request.user
        assert isinstance(by, Operator)  # noqa: S101 - the admin requires staff
        data = form.cleaned_data
        if data.get("team"):
            issued = tokens.issue_integration_token(name=data["name"], team=data["team"], by=by)
        else:
            issued = tokens.issue_operator_token(name=data["name"], operator=data["operator"], by=by)
        obj.pk = issued.token.pk
        obj.__dict__.update({k: v for k, v in issued.token.__dict__.items() if not k.startswith("_")})
        self.message_user(
            request,
            _("The token's text, shown only now — copy it: %(text)s") % {"text": issued.text},
            messages.WARNING,
        )

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        by = request.user
        assert isinstance(by, Operator)  # noqa: S101
        for token in queryset.filter(revoked_at__isnull=True):
            tokens.revoke_token(token=token, by=by)
        self.message_user(request, _("Revoked."), messages.SUCCESS)
