"""Forms of the knowledge-base pages. Each validates one action's input; the view calls one service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from bot import transfer
from bot.models import Article
from bot.selectors import ArticleFilters
from bot.transfer import ArticleInput, ExampleInput
from common.db import MAX_ID
from inbox.models import Channel

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_EXAMPLES = 500


class FilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    language = forms.CharField(label=_("Language"), required=False, max_length=16)
    tag = forms.CharField(label=_("Tag"), required=False, max_length=50)
    channel = forms.IntegerField(label=_("Channel"), required=False, min_value=1, max_value=MAX_ID)

    def filters(self) -> ArticleFilters:
        data = self.cleaned_data
        return ArticleFilters(
            query=(data.get("q") or "").strip(),
            language=(data.get("language") or "").strip(),
            tag=(data.get("tag") or "").strip(),
            channel_id=data.get("channel"),
        )


class ArticleForm(forms.Form):
    """An article and its example questions (rows of ``example_text``/``example_language`` pairs)."""

    title = forms.CharField(label=_("Title"), max_length=transfer.TITLE_MAX)
    answer = forms.CharField(label=_("Answer"), widget=forms.Textarea(attrs={"rows": 5}))
    language = forms.CharField(
        label=_("Language"),
        max_length=transfer.LANGUAGE_MAX,
        initial="en",
        help_text=_("A code such as en, ru, uk, fa."),
    )
    tags = forms.CharField(label=_("Tags"), required=False, help_text=_("Separated by commas."))
    channels = forms.ModelMultipleChoiceField(
        label=_("Channels that may use it"),
        queryset=Channel.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every channel may use it."),
    )
    is_active = forms.BooleanField(label=_("Active (the bot may answer with it)"), required=False, initial=True)

    def __init__(self, data: QueryDict | None = None, *, article: Article | None = None) -> None:
        initial: dict[str, Any] = {}
        self.example_rows: list[ExampleInput] = []
        if article is not None:
            initial = {
                "title": article.title,
                "answer": article.answer,
                "language": article.language,
                "tags": ", ".join(article.tags or []),
                "channels": list(article.channels or []),
                "is_active": article.is_active,
            }
            examples = sorted(article.examples.all(), key=lambda e: e.pk)
            self.example_rows = [ExampleInput(e.text, e.language) for e in examples]
        else:
            self.example_rows = [ExampleInput("", "")]  # a new article starts with one empty question
        super().__init__(data, initial=initial, label_suffix="")
        if data is not None:
            texts, languages = data.getlist("example_text"), data.getlist("example_language")
            self.example_rows = [
                ExampleInput(text, languages[i] if i < len(languages) else "") for i, text in enumerate(texts)
            ]
        self.example_errors: list[str] = []

    def clean_language(self) -> str:
        try:
            return transfer.clean_language(self.cleaned_data["language"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_tags(self) -> list[str]:
        try:
            return transfer.clean_tags(self.cleaned_data.get("tags") or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        language = self.cleaned_data.get("language") or "en"
        rows = [ExampleInput(e.text, e.language.strip() or language) for e in self.example_rows]
        if len(rows) > MAX_EXAMPLES:
            self.example_errors.append(
                str(_("An article may have at most %(n)d example questions.") % {"n": MAX_EXAMPLES})
            )
        examples, problems = transfer.check_examples(rows)
        self.example_errors += problems
        if self.example_errors:
            raise forms.ValidationError(_("Check the example questions."))
        self.cleaned_examples = examples
        return cleaned

    def article_input(self) -> ArticleInput:
        data = self.cleaned_data
        return ArticleInput(
            title=data["title"].strip(),
            answer=data["answer"].strip(),
            language=data["language"],
            tags=data["tags"],
            channels=[c.pk for c in data["channels"]],
            examples=self.cleaned_examples,
            is_active=data["is_active"],
        )


class TryForm(forms.Form):
    text = forms.CharField(label=_("A customer writes"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    channel = forms.ModelChoiceField(
        label=_("On channel"),
        queryset=Channel.objects.order_by("name"),
        required=False,
        empty_label=_("Any channel"),
    )


class ImportForm(forms.Form):
    file = forms.FileField(label=_("File (.json or .csv)"))

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(mb)d MB. Split it into smaller files.") % {"mb": MAX_UPLOAD_BYTES // 2**20}
            )
        return upload
