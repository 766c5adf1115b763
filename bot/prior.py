"""The bot from day one: an operating point shipped with Parley, and generic out-of-scope messages.

A new team's own data is too small for calibration's one-sided Wilson bound (20 articles x 5
example questions cannot prove 97 % precision: ~90 right answers in a row would be needed), so
the bot would hand off everything. Instead Parley ships, per encoder and language:

- ``data/prior.json``: an operating point learned once on public data (CLINC150 domains A, and
  clinc150_ml for ru/uk/fa) from knowledge bases of 20-50 articles x 5-20 example questions, and
  checked on domains B the learning never saw (``python -m bench.bot_prior``);
- ``data/generic_oos.json``: out-of-scope messages (CLINC150 ``oos_train`` and its ru/uk/fa
  translations, CC BY 3.0) that join every team's own known out-of-scope messages, in the head
  (an out-of-scope class) and in calibration. The prior was learned with them there, so they are
  always there.

The rule (:func:`choose`) is a switch, not a blend: the team's own calibration wins as soon as it
meets the targets by its Wilson bound; until then the prior's point is used, unless the team's own
held-out data already shows, by the same bound taken the other way, that the prior's point is
below the precision target on this knowledge base; then the bot hands off, as before. A switch
keeps what the bot promises traceable to one measurement (the team's, or the prior's on domains
it never saw); a Bayesian blend would need a model of how thresholds move between knowledge
bases that 10 CLINC150 domains cannot fit.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from bot.calibration import (
    ALL_LANGUAGES,
    CalibrationResult,
    HeldOut,
    Outcome,
    Sample,
    Targets,
    choose_point,
    evaluate,
    wilson_bound,
)
from bot.engine import OperatingPoint

DATA = Path(__file__).resolve().parent / "data"
PRIOR_FILE = DATA / "prior.json"
GENERIC_OOS_FILE = DATA / "generic_oos.json"

TEAM = "team"  # the team's own calibration decides
PRIOR = "prior"  # Parley's shipped operating point decides


@dataclass(frozen=True)
class Prior:
    """One shipped operating point and what it did on knowledge bases it never saw."""

    encoder: str
    language: str
    threshold: float
    margin: float
    # On held-out domains: answered share, precision among answered, ... (bench.bot_prior).
    validated: dict[str, Any] = field(default_factory=dict)

    @property
    def point(self) -> OperatingPoint:
        return OperatingPoint(self.threshold, self.margin)


@cache
def _priors(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data.get("encoders", {}))


def prior_for(encoder: str, language: str, *, path: Path = PRIOR_FILE) -> Prior | None:
    """The shipped point for ``encoder`` (its exact name and version) in ``language``, else its pooled one.

    None when the language was learned and no point met the targets in it (``null`` in the file):
    the pooled point is English's, and a language that needs more cannot borrow it.
    """
    points = _priors(path).get(encoder, {})
    for candidate in (language, ALL_LANGUAGES):
        if candidate not in points:
            continue
        found = points[candidate]
        if not found:  # learned, and no point met the targets in this language: no borrowing
            return None
        return Prior(
            encoder, candidate, float(found["threshold"]), float(found["margin"]), dict(found.get("validated", {}))
        )
    return None


@cache
def generic_out_of_scope(path: Path = GENERIC_OOS_FILE) -> tuple[tuple[str, str], ...]:
    """(text, language) of the out-of-scope messages Parley ships."""
    if not path.exists():
        return ()
    data = json.loads(path.read_text(encoding="utf-8"))
    return tuple((str(m["text"]), str(m["language"])) for m in data["messages"])


def precision_upper(samples: Sequence[Sample], point: OperatingPoint, targets: Targets) -> float:
    """An optimistic (one-sided upper Wilson) bound of the precision ``point`` reaches on ``samples``.

    Re-weighted to ``targets.oos_share`` as :func:`bot.calibration.choose_point` does, but with
    both sides taken the other way: in-scope answers right as often, and out-of-scope messages
    answered as rarely, as the sample sizes allow. Below the target, the data shows the point fails.
    """
    confidence = np.array([s.confidence for s in samples], dtype=np.float64)
    gap = confidence - np.array([s.runner_up for s in samples], dtype=np.float64)
    in_scope = np.array([s.in_scope for s in samples], dtype=bool)
    correct = np.array([s.correct for s in samples], dtype=bool)
    answered = (confidence >= point.threshold) & (gap >= point.margin)
    n_in, n_oos = int(in_scope.sum()), int((~in_scope).sum())
    answered_in = int((answered & in_scope).sum())
    if answered_in == 0:
        return 1.0
    right_high = float(wilson_bound(int((answered & correct & in_scope).sum()), answered_in, targets.z, upper=True))
    answered_oos_low = (
        float(wilson_bound(int((answered & ~in_scope).sum()), n_oos, targets.z, upper=False)) if n_oos else 0.0
    )
    weight_in = (1 - targets.oos_share) * answered_in / max(n_in, 1)
    return float(weight_in * right_high / (weight_in + targets.oos_share * answered_oos_low))


@dataclass(frozen=True)
class Choice:
    """The operating point a language gets, and where it came from."""

    result: CalibrationResult
    source: str  # TEAM or PRIOR
    prior: Prior | None = None
    # The team's own held-out data (and the generic out-of-scope messages) at the prior's point.
    prior_precision_upper: float | None = None
    prior_rejected: bool = False
    own_out_of_scope: int = 0  # the team's own known out-of-scope messages among the samples
    # At the chosen point, on the held-out samples (generic out-of-scope messages included): what
    # the knowledge-base page shows as expected.
    estimate: Outcome | None = None

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "own_out_of_scope": self.own_out_of_scope}
        if self.estimate is not None:
            out["estimate"] = {key: round(value, 4) for key, value in asdict(self.estimate).items()}
        if self.prior is not None:
            out["prior"] = {
                "language": self.prior.language,
                "threshold": self.prior.threshold,
                "margin": self.prior.margin,
                "validated": self.prior.validated,
                "precision_upper_on_team_data": (
                    None if self.prior_precision_upper is None else round(self.prior_precision_upper, 4)
                ),
                "rejected": self.prior_rejected,
            }
        return out


def choose(
    samples: Sequence[Sample],
    targets: Targets,
    prior: Prior | None,
    *,
    generic: Sequence[bool] | None = None,
    min_out_of_scope: int = 10,
) -> Choice:
    """The team's own point when its own data proves one; else the prior's, unless the data refutes it.

    ``generic`` flags the samples that are shipped out-of-scope messages. The team's own
    calibration counts only once the team has ``min_out_of_scope`` known out-of-scope messages of
    its own, and then without the generic ones: held out from a head that learned their
    look-alikes, they are handed off more easily than a real customer's odd question (on domains
    B a calibration on them promised 97 % and delivered 93-96 %). Until then the generic ones
    stand in for out-of-scope traffic only to check the prior and to estimate what it will do.
    """
    flags = list(generic) if generic is not None else [False] * len(samples)
    own_oos = sum(1 for s, g in zip(samples, flags, strict=True) if not s.in_scope and not g)
    own_samples = [s for s, g in zip(samples, flags, strict=True) if not g]
    own = choose_point(own_samples, targets)
    if own_oos >= min_out_of_scope and own.feasible:
        return Choice(own, TEAM, prior, own_out_of_scope=own_oos, estimate=own.outcome)
    infeasible = replace(own, feasible=False) if own.feasible else own
    if prior is None or own.n_in_scope == 0:  # nothing of the team's to check the prior on (an empty base)
        return Choice(infeasible, TEAM, prior, own_out_of_scope=own_oos)
    upper = precision_upper(samples, prior.point, targets)
    estimate = evaluate(samples, prior.point, oos_share=targets.oos_share)
    if upper < targets.precision:
        return Choice(infeasible, TEAM, prior, upper, prior_rejected=True, own_out_of_scope=own_oos, estimate=estimate)
    result = CalibrationResult(prior.point, True, estimate, own.n_in_scope, own.n_out_of_scope, targets)
    return Choice(result, PRIOR, prior, upper, own_out_of_scope=own_oos, estimate=estimate)


def language_groups(held: HeldOut, *, min_in_scope: int) -> dict[str, list[int]]:
    """Sample positions per calibrated language: the pooled ``"*"`` (all), and each language with enough data.

    A language gets its own group when it has at least ``min_in_scope`` held-out example
    questions (its out-of-scope samples, the shipped ones included, come with them).
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for position, language in enumerate(held.languages):
        groups[language].append(position)
    chosen = {ALL_LANGUAGES: list(range(len(held.samples)))}
    for language, positions in sorted(groups.items()):
        if sum(1 for p in positions if held.samples[p].in_scope) >= min_in_scope:
            chosen[language] = positions
    return chosen


def choose_points(
    held: HeldOut,
    targets: Targets,
    *,
    encoder: str,
    min_in_scope: int = 20,
    min_out_of_scope: int = 10,
    use_prior: bool = True,
    path: Path = PRIOR_FILE,
) -> dict[str, tuple[list[int], Choice]]:
    """Per calibrated language: its samples' positions in ``held`` and the point it gets (:func:`choose`)."""
    generic = held.generic or [False] * len(held.samples)
    out = {}
    for language, positions in language_groups(held, min_in_scope=min_in_scope).items():
        prior = prior_for(encoder, language, path=path) if use_prior else None
        choice = choose(
            [held.samples[p] for p in positions],
            targets,
            prior,
            generic=[generic[p] for p in positions],
            min_out_of_scope=min_out_of_scope,
        )
        out[language] = (positions, choice)
    return out
