"""Reads of the knowledge-base pages: the filtered article list, export records, and "try the bot"."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from bot import knowledge
from bot.encoders import get_encoder, spec_name
from bot.engine import Action, Verdict
from bot.kb import calibration_started
from bot.models import Article, Calibration, ExampleQuestion
from bot.services import wants_a_person
from bot.transfer import ArticleRecord, ExampleInput
from inbox.models import Channel

LIST_LIMIT = 200


@dataclass(frozen=True)
class ArticleFilters:
    query: str = ""
    language: str = ""
    tag: str = ""
    channel_id: int | None = None


def _filtered(filters: ArticleFilters) -> QuerySet[Article]:
    articles = Article.objects.all()
    if filters.query:
        matching_examples = ExampleQuestion.objects.filter(text__icontains=filters.query).values("article_id")
        articles = articles.filter(
            Q(title__icontains=filters.query) | Q(answer__icontains=filters.query) | Q(pk__in=matching_examples)
        )
    if filters.language:
        articles = articles.filter(language=filters.language)
    return articles


def _keep(article: Article, filters: ArticleFilters) -> bool:
    # Tags and channels are JSON lists; SQLite cannot query inside them, so they are checked here.
    if filters.tag and filters.tag not in (article.tags or []):
        return False
    return filters.channel_id is None or article.allows_channel(filters.channel_id)


@dataclass(frozen=True)
class ArticlePage:
    articles: Sequence[Article]  # each with ``example_count``
    total: int
    limited: bool


def article_page(filters: ArticleFilters, *, limit: int = LIST_LIMIT) -> ArticlePage:
    """Articles that match, with their number of example questions (two queries whatever the size)."""
    rows = [
        a
        for a in _filtered(filters).annotate(example_count=Count("examples")).order_by("title", "pk")
        if _keep(a, filters)
    ]
    return ArticlePage(rows[:limit], len(rows), len(rows) > limit)


@dataclass(frozen=True)
class FilterChoices:
    languages: list[str]
    tags: list[str]
    channels: list[Channel]


def filter_choices() -> FilterChoices:
    languages = set(Article.objects.values_list("language", flat=True).distinct())
    tags: set[str] = set()
    for article_tags in Article.objects.values_list("tags", flat=True):
        tags.update(article_tags or [])
    return FilterChoices(sorted(languages), sorted(tags, key=str.casefold), list(Channel.objects.order_by("name")))


def export_records(filters: ArticleFilters) -> list[ArticleRecord]:
    articles = [a for a in _filtered(filters).prefetch_related("examples").order_by("title", "pk") if _keep(a, filters)]
    return [
        ArticleRecord(
            id=a.pk,
            title=a.title,
            answer=a.answer,
            language=a.language,
            tags=list(a.tags or []),
            channels=list(a.channels or []),
            is_active=a.is_active,
            examples=[ExampleInput(e.text, e.language) for e in sorted(a.examples.all(), key=lambda e: e.pk)],
        )
        for a in articles
    ]


def article_with_examples(pk: int) -> Article:
    return Article.objects.prefetch_related("examples").get(pk=pk)


# -- try the bot ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredArticle:
    article: Article | None
    article_id: int
    confidence: float
    similarity: float


@dataclass
class BotTrial:
    """What the bot would do with one message, and everything it decided on."""

    text: str
    verdict: Verdict
    encoder: str
    language: str
    calibration: Calibration | None
    candidates: list[ScoredArticle] = field(default_factory=list)
    wants_person: bool = False
    stale: bool = False  # the knowledge base changed since the calibration

    @property
    def action(self) -> str:
        return self.verdict.action.value

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    @property
    def threshold(self) -> float | None:
        value = self.verdict.point.threshold
        return value if math.isfinite(value) else None

    @property
    def margin(self) -> float:
        return self.verdict.point.margin

    @property
    def confidence(self) -> float:
        return self.verdict.ranking.confidence

    @property
    def answer(self) -> ScoredArticle | None:
        return self.candidates[0] if self.verdict.action is Action.ANSWER and self.candidates else None

    @property
    def offered(self) -> list[ScoredArticle]:
        return self.candidates[:2] if self.verdict.action is Action.CLARIFY else []


def try_bot(*, text: str, channel_id: int | None) -> BotTrial:
    """Run ``text`` through :func:`bot.knowledge.triage_text`, the function live triage uses."""

    encoder = get_encoder()
    verdict = knowledge.triage_text(text=text, channel_id=channel_id, encoder=encoder)
    language = verdict.ranking.language
    found = knowledge.operating_point(encoder=encoder, language=language)
    record = found[1] if found is not None else None
    ids = [c.article_id for c in verdict.ranking.candidates]
    articles = Article.objects.in_bulk(ids)
    candidates = [
        ScoredArticle(articles.get(c.article_id), c.article_id, c.confidence, c.similarity)
        for c in verdict.ranking.candidates
    ]
    stale = record is not None and record.stats.get("knowledge_base") not in (None, knowledge.fingerprint())
    return BotTrial(
        text=text,
        verdict=verdict,
        encoder=encoder.name,
        language=language,
        calibration=record,
        candidates=candidates,
        wants_person=wants_a_person(text),
        stale=stale,
    )


@dataclass(frozen=True)
class Readiness:
    """What the bot can do now in one language, and what data would improve it most (from a calibration)."""

    language: str
    source: str  # "team": the team's own calibration; "prior": the thresholds Parley ships
    feasible: bool
    answered_right: float | None  # of in-scope messages, expected (held-out example questions)
    precision: float | None  # among answered, expected, at the targets' out-of-scope share
    oos_handed_off: float | None
    weak_articles: list[tuple[Article, int]]  # (article, example questions to add)
    own_out_of_scope: int
    add_out_of_scope: int


def _readiness(record: Calibration) -> Readiness:
    stats = record.stats
    estimate = stats.get("estimate") or (stats.get("outcome") if stats.get("feasible", True) else None) or {}
    advice = stats.get("advice") or {}
    wanted = [int(pk) for pk in advice.get("articles", [])]
    found = Article.objects.in_bulk(wanted)
    add = advice.get("add_examples", {})
    return Readiness(
        language=record.language,
        source=str(stats.get("source", "team")),
        feasible=bool(stats.get("feasible", True)),
        answered_right=estimate.get("in_scope_answered_right"),
        precision=estimate.get("precision_answered"),
        oos_handed_off=estimate.get("oos_handed_off"),
        weak_articles=[(found[pk], int(add.get(str(pk), 0))) for pk in wanted if pk in found],
        own_out_of_scope=int(advice.get("own_out_of_scope", 0)),
        add_out_of_scope=int(advice.get("add_out_of_scope", 0)),
    )


@dataclass(frozen=True)
class CalibrationState:
    latest: Calibration | None
    running_since: datetime | None
    languages: list[Readiness] = field(default_factory=list)  # the latest calibration's, pooled first

    @property
    def feasible(self) -> bool:
        if self.languages:
            return any(item.feasible for item in self.languages)
        return self.latest is not None and bool(self.latest.stats.get("feasible", True))


def calibration_state() -> CalibrationState:
    """The newest calibration of the configured encoder (``bot calibrate`` also calibrates the fallback), per language."""

    calibrations = Calibration.objects.order_by("-computed_at", "-pk")
    try:
        calibrations = calibrations.filter(encoder=spec_name())
    except ValueError:  # BOT_ENCODER names no encoder: every bot turn hands off, and says why in the log
        calibrations = calibrations.none()
    latest = calibrations.first()
    if latest is None:
        return CalibrationState(None, calibration_started())
    batch = sorted(calibrations.filter(computed_at=latest.computed_at), key=lambda r: (r.language != "*", r.language))
    return CalibrationState(latest, calibration_started(), [_readiness(record) for record in batch])
