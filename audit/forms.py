from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from audit.models import Entry
from common.db import MAX_ID


class EntryFilterForm(forms.Form):
    """The audit page's query string: filters and the page cursor (the download takes the same filters)."""

    action = forms.ChoiceField(
        label=_("Action"), choices=[("", _("Any action")), *Entry.Action.choices], required=False
    )
    kind = forms.CharField(label=_("Kind"), max_length=40, required=False)
    actor = forms.CharField(label=_("Operator"), max_length=150, required=False)
    target = forms.CharField(label=_("Object"), max_length=200, required=False)
    since = forms.DateField(
        label=pgettext_lazy("start of a date range", "From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    until = forms.DateField(
        label=pgettext_lazy("end of a date range", "To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    before = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("“From” must not be after “To”."))
        return data

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for :func:`audit.selectors.entries`."""
        data = self.cleaned_data
        zone = timezone.get_current_timezone()
        since = datetime.combine(data["since"], time.min, tzinfo=zone) if data.get("since") else None
        until = datetime.combine(data["until"], time.max, tzinfo=zone) if data.get("until") else None
        return {
            "action": data.get("action") or None,
            "kind": (data.get("kind") or "").strip() or None,
            "actor": (data.get("actor") or "").strip() or None,
            "target": (data.get("target") or "").strip() or None,
            "since": since,
            "until": until,
        }
