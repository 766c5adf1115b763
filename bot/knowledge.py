"""The knowledge base as the engine sees it: cached vectors, the per-process index, calibration.

Reads the triage models, feeds :mod:`bot.engine` and :mod:`bot.calibration`,
and writes only the vector cache and calibration records.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cachetools import TTLCache, cached
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from bot.calibration import (
    CalibrationResult,
    HeldOut,
    Labelled,
    Targets,
    choose_cascade,
    score_held_out,
)
from bot.encoders import Encoder, Vectors, get_encoder
from bot.engine import Action, Cascade, CascadePoint, KnowledgeIndex, OperatingPoint, Verdict
from bot.language import detect_language
from bot.models import Article, Calibration, EncodedText, ExampleQuestion, KnownOutOfScope, text_hash
from bot.prior import TEAM, choose_points, generic_out_of_scope

logger = logging.getLogger(__name__)

_CHUNK = 500  # rows per IN (...) query: SQLite limits the number of parameters


def embed(*, encoder: Encoder, texts: Sequence[str]) -> Vectors:
    """Vectors for ``texts``: cached ones are read, only texts not seen before are encoded and stored."""
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    hashes = [text_hash(text) for text in texts]
    by_hash = dict(zip(hashes, texts, strict=True))
    found: dict[str, Vectors] = {}
    wanted = list(by_hash)
    for start in range(0, len(wanted), _CHUNK):
        rows = EncodedText.objects.filter(
            encoder=encoder.name, dim=encoder.dim, text_hash__in=wanted[start : start + _CHUNK]
        )
        found.update((row.text_hash, row.as_array()) for row in rows)
    missing = [key for key in wanted if key not in found]
    if missing:
        vectors = encoder.encode([by_hash[key] for key in missing])
        EncodedText.objects.bulk_create(
            [
                EncodedText(encoder=encoder.name, text_hash=key, dim=encoder.dim, vector=vector.astype("<f4").tobytes())
                for key, vector in zip(missing, vectors, strict=True)
            ],
            ignore_conflicts=True,
            batch_size=_CHUNK,
        )
        found.update(zip(missing, vectors, strict=True))
        logger.info("bot encoder %s embedded %d new texts", encoder.name, len(missing))
    return np.vstack([found[key] for key in hashes]).astype(np.float32)


def fingerprint() -> str:
    """Changes whenever an article, an example question or a known out-of-scope message changes."""
    parts = [
        Article.objects.aggregate(n=Count("pk"), last=Max("updated_at"), top=Max("pk")),
        ExampleQuestion.objects.aggregate(n=Count("pk"), last=Max("updated_at"), top=Max("pk")),
        KnownOutOfScope.objects.aggregate(n=Count("pk"), top=Max("pk")),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _examples() -> list[Labelled]:
    rows = ExampleQuestion.objects.filter(article__is_active=True).order_by("pk")
    return [Labelled(a, t, lang) for a, t, lang in rows.values_list("article_id", "text", "language")]


def _known_oos() -> list[Labelled]:
    """The team's known out-of-scope messages, then the generic ones Parley ships (:mod:`bot.prior`)."""
    rows = KnownOutOfScope.objects.order_by("pk").values_list("text", "language")
    own = [Labelled(0, text, language) for text, language in rows]
    seen = {item.text for item in own}
    return own + [
        Labelled(0, text, language, generic=True) for text, language in generic_out_of_scope() if text not in seen
    ]


def build_index(*, encoder: Encoder) -> KnowledgeIndex:
    """An index of every active article's example questions, with the known out-of-scope messages."""
    examples, oos = _examples(), _known_oos()
    vectors = embed(encoder=encoder, texts=[e.text for e in examples])
    oos_vectors = embed(encoder=encoder, texts=[e.text for e in oos]) if oos else None
    return KnowledgeIndex(
        encoder=encoder,
        vectors=vectors,
        article_ids=np.array([e.article_id for e in examples], dtype=np.int64),
        oos_vectors=oos_vectors,
        oos_generic=np.array([e.generic for e in oos], dtype=bool),
        texts=[e.text for e in examples],
        oos_texts=[e.text for e in oos],
        languages=[e.language for e in examples],
        oos_languages=[e.language for e in oos],
    )


def cascade_enabled() -> bool:
    """Whether the bot may let a cheap first stage decide (``BOT_CASCADE``, on unless 0/false/no/off).

    On, an encoder of several parts (``use+e5``) gets a cascade; it is used only for languages
    whose calibration chose its cut-offs (``manage.py bot calibrate``).
    """
    from django.conf import settings

    value = getattr(settings, "BOT_CASCADE", None)
    if value is None:
        value = os.environ.get("BOT_CASCADE", "")
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Snapshot:
    """One process's view of one knowledge-base version under one encoder."""

    fingerprint: str
    cascade: Cascade  # the full index, and its cheap stage when there is one
    channels: dict[int, list[int]]  # article id -> channel ids it is limited to (empty: all)

    @property
    def index(self) -> KnowledgeIndex:
        return self.cascade.full

    def allowed(self, channel_id: int | None) -> list[int] | None:
        """Article ids a channel may use; None when every article may be used."""
        if channel_id is None or not any(self.channels.values()):
            return None
        return [pk for pk, channels in self.channels.items() if not channels or channel_id in channels]


_lock = threading.Lock()
_snapshots: dict[str, Snapshot] = {}


def current_snapshot(*, encoder: Encoder | None = None) -> Snapshot:
    """This process's index for the knowledge base as it is now, rebuilt (head retrained) on change."""
    encoder = encoder or get_encoder()
    now = fingerprint()
    with _lock:
        snapshot = _snapshots.get(encoder.name)
        if snapshot is None or snapshot.fingerprint != now:
            channels = dict(Article.objects.active().values_list("pk", "channels"))
            # Both heads retrain here, on every knowledge-base change.
            cascade = Cascade.of(build_index(encoder=encoder), enabled=cascade_enabled())
            snapshot = _snapshots[encoder.name] = Snapshot(now, cascade, channels)
        return snapshot


def forget_indexes() -> None:
    with _lock:
        _snapshots.clear()
    languages.cache_clear()


# Seconds the knowledge base's languages are kept: a language new to it is told apart within a
# minute (and needs a calibration of its own before it changes what the bot does).
LANGUAGES_TTL = 60.0


@cached(TTLCache(maxsize=1, ttl=LANGUAGES_TTL), lock=threading.Lock())
def languages() -> frozenset[str]:
    """Every language the knowledge base has text in: articles, example questions, known out-of-scope."""
    found: set[str] = set()
    for rows in (
        Article.objects.active().values_list("language", flat=True),
        ExampleQuestion.objects.filter(article__is_active=True).values_list("language", flat=True),
        KnownOutOfScope.objects.values_list("language", flat=True),
    ):
        found.update(rows.order_by().distinct())
    return frozenset(code for code in found if code)


def message_language(text: str) -> str:
    """The language of a customer's message, told among the knowledge base's (``language.detect_language``)."""
    return detect_language(text, known=languages())


def operating_point(*, encoder: Encoder, language: str) -> tuple[OperatingPoint, Calibration] | None:
    """The latest calibration for this encoder and language, else the pooled one, else None."""
    for candidate in (language, Calibration.ALL_LANGUAGES):
        record = Calibration.objects.latest_for(encoder=encoder.name, language=candidate)
        if record is not None:
            return OperatingPoint(record.threshold, record.margin), record
    return None


def cascade_point(*, record: Calibration, cheap: KnowledgeIndex | None) -> CascadePoint | None:
    """The cut-offs ``record`` stores for the cheap stage ``cheap``; None (full model only) when it has none for it."""
    stored = record.stats.get("cascade")
    if cheap is None or not isinstance(stored, dict) or stored.get("cheap_encoder") != cheap.encoder.name:
        return None
    above = stored.get("answer_above")
    return CascadePoint(math.inf if above is None else float(above), float(stored.get("handoff_below") or 0.0))


def held_out_samples(*, encoder: Encoder, folds: int = 5, seed: int = 0, cascade: bool = False) -> HeldOut:
    """Score every example question and known out-of-scope message with an index that never saw it.

    The known out-of-scope messages include the generic ones Parley ships (:mod:`bot.prior`). See
    :func:`bot.calibration.score_held_out`.
    """
    examples, oos = _examples(), _known_oos()
    return score_held_out(
        encoder=encoder,
        examples=examples,
        vectors=embed(encoder=encoder, texts=[e.text for e in examples]),
        oos=oos,
        oos_vectors=embed(encoder=encoder, texts=[e.text for e in oos]),
        folds=folds,
        seed=seed,
        cascade=cascade,
    )


ADVICE_ARTICLES = 5  # articles the page names as the ones to give more example questions
ADVICE_EXAMPLES = 10  # example questions an article should have before it is left off that list
ADVICE_OUT_OF_SCOPE = 60  # own out-of-scope messages a language needs before the team's own point can be proven


def advice(held: HeldOut, positions: Sequence[int], point: OperatingPoint, *, language: str) -> dict[str, Any]:
    """What data would help this language most, from its held-out samples at ``point``.

    The articles whose held-out example questions the bot answered rightly least often (fewest
    examples first on ties), among those with fewer than ``ADVICE_EXAMPLES``; and whether the
    language lacks out-of-scope messages of the team's own.
    """
    generic = held.generic or [False] * len(held.samples)
    right: dict[int, list[bool]] = defaultdict(list)
    own_oos = 0
    for p in positions:
        sample, expected = held.samples[p], held.expected[p] if held.expected else None
        if expected is None:
            own_oos += 0 if generic[p] else 1
            continue
        answered = sample.confidence >= point.threshold and sample.confidence - sample.runner_up >= point.margin
        right[expected].append(answered and sample.correct)
    examples = dict.fromkeys(right, 0)
    for item in _examples():
        if item.article_id in examples and (language == Calibration.ALL_LANGUAGES or item.language == language):
            examples[item.article_id] += 1
    weak = sorted(
        (article for article, n in examples.items() if n < ADVICE_EXAMPLES),
        key=lambda article: (sum(right[article]) / len(right[article]), examples[article], article),
    )
    return {
        "articles": weak[:ADVICE_ARTICLES],
        "add_examples": {str(a): ADVICE_EXAMPLES - examples[a] for a in weak[:ADVICE_ARTICLES]},
        "own_out_of_scope": own_oos,
        "add_out_of_scope": max(ADVICE_OUT_OF_SCOPE - own_oos, 0),
    }


def calibrate(
    *,
    encoder: Encoder | None = None,
    targets: Targets | None = None,
    folds: int = 5,
    min_in_scope: int = 20,
    min_out_of_scope: int = 10,
    seed: int = 0,
) -> list[Calibration]:
    """Compute and store operating points for ``encoder``: one per language with enough data, and a pooled one.

    A language gets its own record when it has at least ``min_in_scope`` held-out example
    questions; the pooled record (language ``"*"``) uses everything and covers the other
    languages. Each gets the team's own point once the team's own data proves one (it needs
    ``min_out_of_scope`` known out-of-scope messages of its own, and the targets' Wilson bounds),
    else the point Parley ships for the encoder (:mod:`bot.prior`), unless the held-out data
    refutes it; with neither the record is infeasible and the bot hands off.
    """
    encoder = encoder or get_encoder()
    targets = targets or Targets()
    held = held_out_samples(encoder=encoder, folds=folds, seed=seed, cascade=cascade_enabled())
    counts = held.counts
    chosen = choose_points(
        held, targets, encoder=encoder.name, min_in_scope=min_in_scope, min_out_of_scope=min_out_of_scope
    )
    results: dict[str, CalibrationResult] = {}
    extra: dict[str, dict[str, Any]] = {}
    cascades: dict[str, dict[str, Any] | None] = {}
    for language, (positions, choice) in chosen.items():
        results[language] = result = choice.result
        extra[language] = {**choice.stats(), "advice": advice(held, positions, result.point, language=language)}
        cascades[language] = None
        # A cascade only where the team's own data proves one: the prior's point has no cut-offs.
        if held.cheap_samples is not None and result.feasible and choice.source == TEAM:
            found = choose_cascade(
                [held.cheap_samples[p] for p in positions], [held.samples[p] for p in positions], result.point, targets
            )
            if found is not None:
                cascades[language] = {"cheap_encoder": held.cheap_encoder, **found.stats()}
    now = timezone.now()
    kb = fingerprint()
    with transaction.atomic():
        records = [
            Calibration.objects.create(
                encoder=encoder.name,
                language=language,
                threshold=result.point.threshold,
                margin=result.point.margin,
                computed_at=now,
                stats={
                    **result.stats(),
                    **counts,
                    **extra[language],
                    "method": "held-out folds" if extra[language]["source"] == TEAM else "prior",
                    "knowledge_base": kb,
                    # The cascade's cut-offs (engine.CascadePoint); None: the full model decides alone.
                    "cascade": cascades[language],
                },
            )
            for language, result in results.items()
        ]
    for record in records:
        if not record.stats["feasible"]:
            logger.warning("bot calibration %s found no point that meets the targets: it will hand off", record)
    return records


def triage_text(
    *, text: str, channel_id: int | None = None, encoder: Encoder | None = None, language: str = ""
) -> Verdict:
    """Rank the articles ``channel_id`` may use for ``text`` and decide: answer, ask, or hand off.

    Without a calibration for the encoder (``manage.py bot calibrate`` was never run) the verdict
    is a hand-off: the bot never answers on a guessed threshold.
    """
    encoder = encoder or get_encoder()
    snapshot = current_snapshot(encoder=encoder)
    language = language or message_language(text)  # the caller's, when it detected it already
    allowed = snapshot.allowed(channel_id)
    found = operating_point(encoder=encoder, language=language)
    if found is None:
        ranking = snapshot.index.rank(text, allowed=allowed, language=language)
        return Verdict(Action.HANDOFF, ranking, OperatingPoint(float("inf"), 0.0), "not_calibrated")
    point, record = found
    if not record.stats.get("feasible", True):
        # Calibration found no point that meets the targets (too little data): people answer.
        ranking = snapshot.index.rank(text, allowed=allowed, language=language)
        return Verdict(Action.HANDOFF, ranking, point, "calibration_infeasible")
    cut = cascade_point(record=record, cheap=snapshot.cascade.cheap)
    return snapshot.cascade.triage(text, point=point, cut=cut, allowed=allowed, language=language)
