from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from inbox.models import Team
from reports.selectors import DEFAULT_PERIOD


class ReportForm(forms.Form):
    """The Reports page's query string: the period, a team, and ``format=csv`` for the download."""

    days = forms.TypedChoiceField(
        label=_("Period"),
        choices=[(7, _("Last 7 days")), (30, _("Last 30 days")), (90, _("Last 90 days")), (365, _("Last 365 days"))],
        coerce=int,
        empty_value=None,
        required=False,
        error_messages={"invalid_choice": _("Choose a period of 7, 30, 90 or 365 days.")},
    )
    team = forms.TypedChoiceField(
        label=_("Team"),
        coerce=int,
        empty_value=None,
        required=False,
        error_messages={"invalid_choice": _("Choose one of your teams, or all of them.")},
    )
    format = forms.ChoiceField(
        choices=[("", _("Page")), ("csv", "CSV")],
        required=False,
        error_messages={"invalid_choice": _("The only download is format=csv.")},
    )

    def __init__(self, *args: Any, teams: list[Team], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["team"]
        assert isinstance(field, forms.TypedChoiceField)  # noqa: S101
        field.choices = [("", _("All teams")), *((team.pk, team.name) for team in teams)]

    def clean_days(self) -> int:
        return self.cleaned_data.get("days") or DEFAULT_PERIOD
