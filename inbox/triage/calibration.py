"""Choosing the operating point (threshold and margin) from scored data, never by guessing.

The data is a set of messages whose answer is known: in-scope ones (held-out example questions,
or a validation split) with the article that answers them, and out-of-scope ones the bot must hand
off. Each is ranked by the same :class:`~inbox.triage.engine.KnowledgeIndex` the bot uses. The
point chosen answers as many in-scope messages rightly as it can while the answers it gives stay
precise and out-of-scope messages are handed off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from inbox.triage.engine import OperatingPoint, Ranking

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


@dataclass(frozen=True)
class Sample:
    """One scored calibration message: its best two confidences and whether the best is right."""

    confidence: float
    runner_up: float
    correct: bool
    in_scope: bool


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

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> _Columns:
        confidence = np.array([s.confidence for s in samples], dtype=np.float64)
        return cls(
            confidence=confidence,
            gap=confidence - np.array([s.runner_up for s in samples], dtype=np.float64),
            correct=np.array([s.correct for s in samples], dtype=bool),
            in_scope=np.array([s.in_scope for s in samples], dtype=bool),
        )


def _outcome(columns: _Columns, point: OperatingPoint, oos_share: float | None) -> Outcome:
    in_scope = columns.in_scope
    confident = columns.confidence >= point.threshold
    answered = confident & (columns.gap >= point.margin)
    clarified = confident & ~answered
    n_in, n_oos = max(int(in_scope.sum()), 1), max(int((~in_scope).sum()), 1)
    right_in = (answered & columns.correct & in_scope).sum() / n_in
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
