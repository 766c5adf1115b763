"""Choosing the operating point (threshold and margin) from scored data, never by guessing.

The data is a set of messages whose answer is known: in-scope ones (held-out example questions,
or a validation split) with the article that answers them, and out-of-scope ones the bot must hand
off. Each is ranked by the same :class:`~bot.engine.KnowledgeIndex` the bot uses. The
point chosen answers as many in-scope messages rightly as it can while the answers it gives stay
precise and out-of-scope messages are handed off.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from bot.encoders import ConcatEncoder, Encoder, Vectors
from bot.engine import CascadePoint, KnowledgeIndex, OperatingPoint, Ranking, cheap_stage

# The language of the pooled calibration, used for languages without one of their own.
ALL_LANGUAGES = "*"


@dataclass(frozen=True)
class Targets:
    """What the operating point must reach on the calibration data.

    ``precision``: right answers among answers given, at ``oos_share`` out-of-scope traffic (the
    calibration data's own mix rarely matches real traffic, so it is re-weighted to this share).
    ``oos_handed_off``: the share of out-of-scope messages that reach a person (asking "did you
    mean...?" about them counts as not handed off).
    ``z``: both are met by a one-sided Wilson bound at this many standard errors, not by the raw
    shares: a knowledge base has few known out-of-scope messages (CLINC150's val has 100), and a
    point estimate from so few overstates how well the bot will do (1.645: 95 % one-sided; 0: raw).
    """

    precision: float = 0.97
    oos_handed_off: float = 0.95
    oos_share: float = 0.25
    max_margin: float = 0.3
    z: float = 1.645
    # A cascade's cheap stage decides alone only where it disagrees with the full model (another
    # action or another article) on at most these shares of the messages it answers, and of those
    # it hands off, by the same one-sided Wilson bound: a small knowledge base cannot show that,
    # and then has no cascade. Looser for hand-offs: a wrong one costs an answer a person then
    # gives, a wrong answer reaches the customer.
    cascade_answer_disagreement: float = 0.01
    cascade_handoff_disagreement: float = 0.02


@dataclass(frozen=True)
class Sample:
    """One scored calibration message: its best two confidences and whether the best is right."""

    confidence: float
    runner_up: float
    correct: bool
    in_scope: bool
    article_id: int = 0  # the best article (0: none); a cascade's stages are compared by it


def samples_from(rankings: Sequence[Ranking], expected: Sequence[int | None]) -> list[Sample]:
    """``expected`` is the right article id for an in-scope message, None for an out-of-scope one."""
    samples = []
    for ranking, article_id in zip(rankings, expected, strict=True):
        top, second = ranking.top, ranking.runner_up
        samples.append(
            Sample(
                confidence=top.confidence if top else 0.0,
                runner_up=second.confidence if second else 0.0,
                correct=top is not None and article_id is not None and top.article_id == article_id,
                in_scope=article_id is not None,
                article_id=top.article_id if top else 0,
            )
        )
    return samples


@dataclass(frozen=True)
class Outcome:
    """What an operating point does on a set of samples (shares, 0..1)."""

    answered_share: float
    precision_answered: float
    in_scope_answered_right: float
    in_scope_clarified: float
    oos_handed_off: float


@dataclass(frozen=True)
class _Columns:
    confidence: np.ndarray[Any, np.dtype[np.float64]]
    gap: np.ndarray[Any, np.dtype[np.float64]]
    correct: np.ndarray[Any, np.dtype[np.bool_]]
    in_scope: np.ndarray[Any, np.dtype[np.bool_]]
    article: np.ndarray[Any, np.dtype[np.int64]]

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> _Columns:
        confidence = np.array([s.confidence for s in samples], dtype=np.float64)
        return cls(
            confidence=confidence,
            gap=confidence - np.array([s.runner_up for s in samples], dtype=np.float64),
            correct=np.array([s.correct for s in samples], dtype=bool),
            in_scope=np.array([s.in_scope for s in samples], dtype=bool),
            article=np.array([s.article_id for s in samples], dtype=np.int64),
        )

    def at(self, point: OperatingPoint) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(answered, clarified) at ``point``, one flag per sample."""
        confident = self.confidence >= point.threshold
        answered = confident & (self.gap >= point.margin)
        return answered, confident & ~answered


def _outcome(columns: _Columns, point: OperatingPoint, oos_share: float | None) -> Outcome:
    answered, clarified = columns.at(point)
    return _outcome_of(answered, clarified, columns.correct, columns.in_scope, oos_share)


def _outcome_of(
    answered: np.ndarray[Any, Any],
    clarified: np.ndarray[Any, Any],
    correct: np.ndarray[Any, Any],
    in_scope: np.ndarray[Any, Any],
    oos_share: float | None,
) -> Outcome:
    confident = answered | clarified
    n_in, n_oos = max(int(in_scope.sum()), 1), max(int((~in_scope).sum()), 1)
    right_in = (answered & correct & in_scope).sum() / n_in
    answered_in = (answered & in_scope).sum() / n_in
    answered_oos = (answered & ~in_scope).sum() / n_oos
    touched_oos = (confident & ~in_scope).sum() / n_oos
    if oos_share is None:
        oos_share = float((~in_scope).sum() / max(len(in_scope), 1))
    weight_in, weight_oos = 1 - oos_share, oos_share
    answered_weight = weight_in * answered_in + weight_oos * answered_oos
    return Outcome(
        answered_share=float(answered_weight),
        precision_answered=float(weight_in * right_in / answered_weight) if answered_weight else 1.0,
        in_scope_answered_right=float(right_in),
        in_scope_clarified=float((clarified & in_scope).sum() / n_in),
        oos_handed_off=float(1 - touched_oos),
    )


def evaluate(samples: Sequence[Sample], point: OperatingPoint, *, oos_share: float | None = None) -> Outcome:
    """Apply ``point``; ``oos_share`` re-weights the two populations (None: take them as they are)."""
    return _outcome(_Columns.of(samples), point, oos_share)


@dataclass(frozen=True)
class CalibrationResult:
    point: OperatingPoint
    feasible: bool  # False: no point met the targets; the point then hands off everything
    outcome: Outcome
    n_in_scope: int
    n_out_of_scope: int
    targets: Targets

    def stats(self) -> dict[str, Any]:
        return {
            "feasible": self.feasible,
            "n_in_scope": self.n_in_scope,
            "n_out_of_scope": self.n_out_of_scope,
            "targets": asdict(self.targets),
            "outcome": {key: round(value, 4) for key, value in asdict(self.outcome).items()},
        }


def _at_least(values: np.ndarray[Any, Any], thresholds: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """For each threshold, how many of ``values`` are >= it."""
    return len(values) - np.searchsorted(np.sort(values), thresholds, side="left")


def _wilson(
    successes: np.ndarray[Any, Any], n: int | np.ndarray[Any, Any], z: float, *, upper: bool
) -> np.ndarray[Any, Any]:
    """One-sided Wilson score bound of the share ``successes / n``."""
    n = np.maximum(n, 1)
    share = successes / n
    if z == 0:
        return np.asarray(share, dtype=np.float64)
    centre = share + z * z / (2 * n)
    spread = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return np.asarray((centre + spread if upper else centre - spread) / (1 + z * z / n), dtype=np.float64)


def wilson_bound(
    successes: int | np.ndarray[Any, Any], n: int | np.ndarray[Any, Any], z: float, *, upper: bool
) -> np.ndarray[Any, Any]:
    """One-sided Wilson score bound of the share ``successes / n`` (``upper``: the optimistic side), elementwise."""
    return _wilson(np.asarray(successes), n, z, upper=upper)


def choose_point(samples: Sequence[Sample], targets: Targets | None = None) -> CalibrationResult:
    """The point that answers the most in-scope samples rightly while meeting ``targets``.

    Candidate thresholds are the samples' own confidences; candidate margins run from 0 to
    ``targets.max_margin``. Ties go to the higher threshold, then the smaller margin. When nothing
    meets the targets (too little data, or an encoder that cannot separate), the threshold is put
    above every confidence, so the bot hands off rather than guesses.
    """
    targets = targets or Targets()
    columns = _Columns.of(samples)
    in_scope, correct = columns.in_scope, columns.correct
    n_in, n_oos = int(in_scope.sum()), int((~in_scope).sum())
    thresholds = np.unique(columns.confidence)
    margins = np.linspace(0.0, targets.max_margin, 31)
    weight_in, weight_oos = 1 - targets.oos_share, targets.oos_share
    z = targets.z
    # Out-of-scope messages touched (answered or asked about) do not depend on the margin.
    touched_oos = _at_least(columns.confidence[~in_scope], thresholds)
    handed_off_low = _wilson(n_oos - touched_oos, n_oos, z, upper=False)
    best: tuple[float, float, float] | None = None
    for margin in margins:
        clear = columns.gap >= margin
        right_in = _at_least(columns.confidence[clear & correct & in_scope], thresholds)
        answered_in = _at_least(columns.confidence[clear & in_scope], thresholds)
        answered_oos = _at_least(columns.confidence[clear & ~in_scope], thresholds)
        # Pessimistic on both sides: in-scope answers right as rarely, and out-of-scope messages
        # answered as often, as the sample sizes allow.
        right_share_low = _wilson(right_in, answered_in, z, upper=False)
        answered_in_share = answered_in / max(n_in, 1)
        answered_oos_high = _wilson(answered_oos, n_oos, z, upper=True)
        answered = weight_in * answered_in_share + weight_oos * answered_oos_high
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(answered > 0, weight_in * answered_in_share * right_share_low / answered, 1.0)
        ok = (precision >= targets.precision) & (handed_off_low >= targets.oos_handed_off) & (answered_in > 0)
        for position in np.flatnonzero(ok):
            key = (float(right_in[position]) / max(n_in, 1), float(thresholds[position]), -float(margin))
            if best is None or key > best:
                best = key
    if best is None:
        # Confidences are shares (0..1): a threshold above 1 hands off every message.
        point = OperatingPoint(max(1.0, float(columns.confidence.max(initial=0.0))) + 1e-6, 0.0)
        return CalibrationResult(point, False, _outcome(columns, point, targets.oos_share), n_in, n_oos, targets)
    point = OperatingPoint(best[1], -best[2])
    return CalibrationResult(point, True, _outcome(columns, point, targets.oos_share), n_in, n_oos, targets)


@dataclass(frozen=True)
class CascadeResult:
    """A cascade's cut-offs and what the cascade did on the calibration data."""

    cut: CascadePoint
    decided_share: float  # of the messages, decided by the cheap stage alone
    disagreement: float  # of those, where the full model would have decided otherwise
    outcome: Outcome  # of the whole cascade, at the calibration's own mix of messages

    def stats(self) -> dict[str, Any]:
        return {
            "answer_above": None if math.isinf(self.cut.answer_above) else round(self.cut.answer_above, 6),
            "handoff_below": round(self.cut.handoff_below, 6),
            "decided_share": round(self.decided_share, 4),
            "disagreement": round(self.disagreement, 4),
            "outcome": {key: round(value, 4) for key, value in asdict(self.outcome).items()},
        }


def _cascade_flags(
    cheap: _Columns, full: _Columns, point: OperatingPoint, cut: CascadePoint
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(answered, clarified, correct, decided by the cheap stage) per message, as :class:`~bot.engine.Cascade` decides."""
    if len(cheap.confidence) != len(full.confidence):
        raise ValueError("the cheap and the full stage must score the same messages, in the same order")
    high = (cheap.confidence >= cut.answer_above) & (cheap.gap >= point.margin)
    low = cheap.confidence < cut.handoff_below
    full_answered, full_clarified = full.at(point)
    rest = ~high & ~low
    answered = high | (rest & full_answered)
    clarified = rest & full_clarified
    correct = np.where(high, cheap.correct, full.correct)
    return answered, clarified, correct, high | low


def _disagreement(cheap: _Columns, full: _Columns, point: OperatingPoint, cut: CascadePoint) -> float:
    answered, _, _, decided = _cascade_flags(cheap, full, point, cut)
    full_answered, full_clarified = full.at(point)
    full_decision = np.where(full_answered, full.article, np.where(full_clarified, -1, -2))
    cheap_decision = np.where(answered, cheap.article, -2)  # where the cheap stage decided: answer or hand off
    return float((decided & (cheap_decision != full_decision)).sum() / max(int(decided.sum()), 1))


def evaluate_cascade(
    cheap: Sequence[Sample],
    full: Sequence[Sample],
    point: OperatingPoint,
    cut: CascadePoint,
    *,
    oos_share: float | None = None,
) -> tuple[Outcome, float]:
    """The cascade's outcome on paired samples (the same messages, scored by each stage) and the share the cheap stage decided."""
    full_columns = _Columns.of(full)
    answered, clarified, correct, decided = _cascade_flags(_Columns.of(cheap), full_columns, point, cut)
    outcome = _outcome_of(answered, clarified, correct, full_columns.in_scope, oos_share)
    return outcome, float(decided.mean()) if len(decided) else 0.0


def cascade_disagreement(
    cheap: Sequence[Sample], full: Sequence[Sample], point: OperatingPoint, cut: CascadePoint
) -> float:
    """Among the messages the cheap stage decides, the share the full model would have decided otherwise."""
    return _disagreement(_Columns.of(cheap), _Columns.of(full), point, cut)


def _meets(
    answered: np.ndarray[Any, Any],
    clarified: np.ndarray[Any, Any],
    correct: np.ndarray[Any, Any],
    in_scope: np.ndarray[Any, Any],
    targets: Targets,
) -> bool:
    """Whether fixed decisions meet ``targets`` by the pessimistic bounds :func:`choose_point` uses."""
    n_in, n_oos = int(in_scope.sum()), int((~in_scope).sum())
    z = targets.z
    answered_in = int((answered & in_scope).sum())
    right_low = float(_wilson(np.array(int((answered & correct & in_scope).sum())), answered_in, z, upper=False))
    answered_oos_high = float(_wilson(np.array(int((answered & ~in_scope).sum())), n_oos, z, upper=True))
    touched_oos = int(((answered | clarified) & ~in_scope).sum())
    handed_off_low = float(_wilson(np.array(n_oos - touched_oos), n_oos, z, upper=False))
    answered_in_share = answered_in / max(n_in, 1)
    weight_in, weight_oos = 1 - targets.oos_share, targets.oos_share
    answered_share = weight_in * answered_in_share + weight_oos * answered_oos_high
    precision = weight_in * answered_in_share * right_low / answered_share if answered_share > 0 else 1.0
    return precision >= targets.precision and handed_off_low >= targets.oos_handed_off


def choose_cascade(
    cheap: Sequence[Sample], full: Sequence[Sample], point: OperatingPoint, targets: Targets | None = None
) -> CascadeResult | None:
    """Cut-offs for a cascade's cheap stage, from the same messages scored by both stages.

    ``full`` is scored by the full model whose operating point is ``point``. The cheap stage
    answers from the lowest confidence at which, among the messages it would answer, it disagrees
    with the full model (another action or another article) on at most
    ``targets.cascade_answer_disagreement`` of them by a one-sided Wilson bound; it hands off below
    the highest confidence at which the full model touches (answers or asks about) at most
    ``targets.cascade_handoff_disagreement`` of what it hands off. None when neither side can be shown to agree, or the cascade's shares
    on these messages miss ``targets``: then the full model decides every message.
    """
    targets = targets or Targets()
    c, f = _Columns.of(cheap), _Columns.of(full)
    if len(c.confidence) != len(f.confidence):
        raise ValueError("the cheap and the full stage must score the same messages, in the same order")
    if not len(c.confidence):
        return None
    z = targets.z
    full_answered, full_clarified = f.at(point)
    # The answer side: messages the cheap stage answers, clear of its runner-up by the point's margin.
    clear = c.gap >= point.margin
    agree = full_answered & (c.article == f.article)
    highs = np.unique(c.confidence[clear])
    n_high = _at_least(c.confidence[clear], highs)
    d_high = _at_least(c.confidence[clear & ~agree], highs)
    ok = (n_high > 0) & (_wilson(d_high, n_high, z, upper=True) <= targets.cascade_answer_disagreement)
    answer_above = float(highs[np.flatnonzero(ok)[0]]) if ok.any() else math.inf
    # The hand-off side: messages below the cut-off; the full model must not touch them.
    lows = np.unique(c.confidence)
    ordered = np.sort(c.confidence)
    n_low = np.searchsorted(ordered, lows, side="left")
    d_low = np.searchsorted(np.sort(c.confidence[full_answered | full_clarified]), lows, side="left")
    low_ok = _wilson(d_low, n_low, z, upper=True) <= targets.cascade_handoff_disagreement
    ok = (n_low > 0) & low_ok & (lows <= answer_above)
    handoff_below = float(lows[np.flatnonzero(ok)[-1]]) if ok.any() else 0.0
    if math.isinf(answer_above) and handoff_below <= 0:
        return None
    cut = CascadePoint(answer_above, handoff_below)
    answered, clarified, correct, decided = _cascade_flags(c, f, point, cut)
    # The full point sits at the edge of the targets' pessimistic bounds (it answers as much as
    # they allow), so any change at all would fail them: the guarantee is the agreement bound
    # above, and the cascade's own shares must still meet the targets as measured.
    if not _meets(answered, clarified, correct, f.in_scope, replace(targets, z=0.0)):
        return None
    return CascadeResult(
        cut,
        decided_share=float(decided.mean()),
        disagreement=_disagreement(c, f, point, cut),
        outcome=_outcome_of(answered, clarified, correct, f.in_scope, targets.oos_share),
    )


def paper_threshold(samples: Sequence[Sample]) -> float:
    """Larson et al. (2019): the threshold that maximises accuracy with out-of-scope as one more class."""
    confidence = np.array([s.confidence for s in samples])
    correct = np.array([s.correct for s in samples])
    in_scope = np.array([s.in_scope for s in samples])
    best_threshold, best_accuracy = 0.0, -1.0
    for threshold in np.unique(confidence):
        accepted = confidence >= threshold
        accuracy = float(((accepted & correct & in_scope) | (~accepted & ~in_scope)).mean())
        if accuracy > best_accuracy:
            best_threshold, best_accuracy = float(threshold), accuracy
    return best_threshold


def pick_point(points: Mapping[str, OperatingPoint], language: str) -> OperatingPoint | None:
    """The language's own operating point, else the pooled one, else None (then the bot hands off)."""
    return points.get(language) or points.get(ALL_LANGUAGES)


@dataclass(frozen=True)
class Labelled:
    """A text whose answer is known: an example question of ``article_id``, or out of scope (0)."""

    article_id: int
    text: str
    language: str
    generic: bool = False  # one of the out-of-scope messages Parley ships, not the team's own


@dataclass(frozen=True)
class HeldOut:
    samples: list[Sample]  # scored by the full model
    cheap_samples: list[Sample] | None  # the same messages scored by the cascade's cheap stage
    cheap_encoder: str  # its name ("" without a cheap stage)
    languages: list[str]  # each sample's
    counts: dict[str, int]
    expected: list[int | None] = field(default_factory=list)  # each sample's right article (None: out of scope)
    generic: list[bool] = field(default_factory=list)  # each sample's: a shipped out-of-scope message


def _folds(items: Sequence[Labelled], folds: int, rng: random.Random) -> list[int]:
    """A fold per item; an article's examples are spread over folds so each keeps some in training."""
    assignment = [0] * len(items)
    groups: dict[int, list[int]] = defaultdict(list)
    for position, item in enumerate(items):
        groups[item.article_id].append(position)
    for positions in groups.values():
        rng.shuffle(positions)
        offset = rng.randrange(folds)
        for rank, position in enumerate(positions):
            assignment[position] = (offset + rank) % folds
    return assignment


def score_held_out(
    *,
    encoder: Encoder,
    examples: list[Labelled],
    vectors: Vectors,
    oos: list[Labelled],
    oos_vectors: Vectors,
    folds: int = 5,
    seed: int = 0,
    cascade: bool = False,
) -> HeldOut:
    """Score every example question and known out-of-scope message with an index that never saw it.

    With ``cascade``, and an encoder that has a cheap stage, that stage (its own head, trained on
    the same folds) scores them too. An article with a single example question cannot be held
    out (it would have nothing left to be found by), so it only trains. No database: the product's
    calibration and the benchmarks run this same function.
    """
    labels = np.array([e.article_id for e in examples], dtype=np.int64)
    rng = random.Random(seed)  # noqa: S311 -- fold assignment, not security
    example_fold = np.array(_folds(examples, folds, rng))
    oos_fold = np.array([rng.randrange(folds) for _ in oos])
    per_article: dict[int, int] = defaultdict(int)
    for example in examples:
        per_article[example.article_id] += 1
    testable = np.array([per_article[e.article_id] > 1 for e in examples], dtype=bool)
    samples: list[Sample] = []
    cheap_samples: list[Sample] | None = None
    cheap_encoder = ""
    languages: list[str] = []
    all_expected: list[int | None] = []
    generic: list[bool] = []
    for fold in range(folds):
        train = example_fold != fold
        held = ~train & testable
        held_oos = oos_fold == fold
        if not held.any() and not held_oos.any():
            continue
        index = KnowledgeIndex(
            encoder=encoder,
            vectors=vectors[train],
            article_ids=labels[train],
            oos_vectors=oos_vectors[~held_oos] if len(oos) else None,
            oos_generic=np.array([item.generic for item in oos], dtype=bool)[~held_oos] if len(oos) else None,
            texts=[examples[i].text for i in np.flatnonzero(train)],
            oos_texts=[oos[i].text for i in np.flatnonzero(~held_oos)],
            languages=[examples[i].language for i in np.flatnonzero(train)],
            oos_languages=[oos[i].language for i in np.flatnonzero(~held_oos)],
        )
        queries = np.vstack([vectors[held], oos_vectors[held_oos]]) if len(oos) else vectors[held]
        query_texts = [examples[i].text for i in np.flatnonzero(held)] + [oos[i].text for i in np.flatnonzero(held_oos)]
        expected: list[int | None] = [int(x) for x in labels[held]]
        expected += [None] * int(held_oos.sum())
        # The index re-weights its own vectors (IDF for TF-IDF); queries go through the same step.
        query_languages = [examples[i].language for i in np.flatnonzero(held)]
        query_languages += [oos[i].language for i in np.flatnonzero(held_oos)]
        rankings = (
            index.rank_vectors(index.reweight(queries), texts=query_texts, languages=query_languages)
            if len(queries)
            else []
        )
        samples += samples_from(rankings, expected)
        all_expected += expected
        cheap = cheap_stage(index) if cascade else None
        if cheap is not None and isinstance(encoder, ConcatEncoder) and len(queries):
            cheap_queries = cheap.reweight(encoder.first_part_of(queries))
            cheap_samples = (cheap_samples or []) + samples_from(
                cheap.rank_vectors(cheap_queries, texts=query_texts), expected
            )
            cheap_encoder = cheap.encoder.name
        languages += query_languages
        generic += [False] * int(held.sum()) + [oos[i].generic for i in np.flatnonzero(held_oos)]
    counts = {"examples": len(examples), "known_out_of_scope": len(oos), "folds": folds}
    if cheap_samples is not None and len(cheap_samples) != len(samples):
        cheap_samples = None  # a fold had no cheap stage (a single article left in it): no cascade
    return HeldOut(samples, cheap_samples, cheap_encoder, languages, counts, all_expected, generic)
