"""Learn the operating point Parley ships per encoder (``bot/data/prior.json``), on CLINC150 domains A only.

    python -m bench.bot_prior [--encoder SPEC] [--seeds N] [--write] [--validate-seeds N]

Knowledge bases of several sizes (20 x 5 to 50 x 20, no known out-of-scope messages of their own,
Parley's generic ones in the head as in the product) are sampled from domains A; each is indexed
whole, as the bot serves it, and scores domain A's test questions and CLINC150's ``oos_val``
(clinc150_ml's ``kb`` / ``test`` / first half of ``oos_test`` for ru, uk and fa). The point kept is
the one that answers the most in-scope questions rightly on average while a language's knowledge
bases together meet the targets (precision among answered at 25 % out-of-scope traffic by a
one-sided 95 % Wilson bound >= 0.97, out-of-scope handed off >= 0.95) and each alone meets a floor
(0.95 and 0.90 as measured): a point that holds for the smallest and the largest knowledge base
alike, since the prior does not know which one a team has. A point per language ("*" for English
and any language without its own), from that language's in-scope questions and the out-of-scope
messages of every language's knowledge bases (``--own-oos``: the language's own 20 alone).

With ``--write`` it stores the points in ``bot/data/prior.json``, with what they did on domains B
(``bench.bot_fewshot``'s scenarios, which the learning never saw) as ``validated``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from bench import bot_data
from bench.bot_fewshot import OOS_SHARE, ROOT, Scenario, build, cached_encoder

# All of a language's knowledge bases together, the precision by a one-sided Wilson bound:
PRIOR_PRECISION = 0.97
PRIOR_OOS_HANDED_OFF = 0.95
# Each knowledge base alone, as measured (issue 17's floor): the worst of 18 sampled knowledge
# bases held to 0.97 set the threshold by its one unlucky sample and halved what the others answered.
EACH_PRECISION = 0.95
EACH_OOS_HANDED_OFF = 0.90
# Every knowledge base must meet the targets as measured, and all of a language's together by a
# one-sided 95 % Wilson bound on the right share among answered (see ``shares``).
Z = 1.645
MARGINS = np.round(np.arange(0.0, 0.31, 0.02), 2)

LEARN = [
    Scenario("en_20x5", 20, 5, 0),
    Scenario("en_30x8", 30, 8, 0),
    Scenario("en_40x10", 40, 10, 0),
    Scenario("en_50x20", 50, 20, 0),
    Scenario("ml_en_20x5", 20, 5, 0, "en", "en", "clinc150_ml"),
    Scenario("ml_en_21x8", 21, 8, 0, "en", "en", "clinc150_ml"),
    *(Scenario(f"ml_{lang}_20x5", 20, 5, 0, lang, lang, "clinc150_ml") for lang in ("ru", "uk", "fa")),
    *(Scenario(f"ml_{lang}_21x8", 21, 8, 0, lang, lang, "clinc150_ml") for lang in ("ru", "uk", "fa")),
]


def scored(scenario: Scenario, side: bot_data.Side, generic: Any, seed: int, model: Any, encode: Any) -> list[Any]:
    """The scenario's queries scored by its whole knowledge base, as the bot serves it."""
    from bot.calibration import samples_from  # after main() limits numpy's threads
    from bot.engine import KnowledgeIndex  # after main() limits numpy's threads

    built = build(scenario, side, generic, seed)
    vectors, oos_vectors = encode([e.text for e in built.examples]), encode([e.text for e in built.oos])
    index = KnowledgeIndex(
        encoder=model,
        vectors=vectors,
        article_ids=np.array([e.article_id for e in built.examples], dtype=np.int64),
        oos_vectors=oos_vectors,
        oos_generic=np.array([e.generic for e in built.oos], dtype=bool),
        texts=[e.text for e in built.examples],
        oos_texts=[e.text for e in built.oos],
        languages=[e.language for e in built.examples],
        oos_languages=[e.language for e in built.oos],
    )
    texts = [text for text, _ in built.queries]
    rankings = index.rank_vectors(index.reweight(encode(texts)), texts=texts, language=scenario.language)
    return samples_from(rankings, [expected for _, expected in built.queries])


@dataclass(frozen=True)
class Group:
    """One knowledge base's scored queries, as arrays."""

    confidence: np.ndarray[Any, Any]
    gap: np.ndarray[Any, Any]
    correct: np.ndarray[Any, Any]
    in_scope: np.ndarray[Any, Any]

    @classmethod
    def of(cls, samples: Sequence[Any]) -> Group:
        confidence = np.array([s.confidence for s in samples])
        return cls(
            confidence,
            confidence - np.array([s.runner_up for s in samples]),
            np.array([s.correct for s in samples], dtype=bool),
            np.array([s.in_scope for s in samples], dtype=bool),
        )

    def at(self, thresholds: np.ndarray[Any, Any], margin: float) -> dict[str, np.ndarray[Any, Any]]:
        """Counts per threshold: queries, answered and right (in scope), answered and touched (out of scope)."""
        confident = self.confidence[None, :] >= thresholds[:, None]
        answered = confident & (self.gap >= margin)[None, :]
        return {
            "n_in": np.full(len(thresholds), int(self.in_scope.sum())),
            "n_oos": np.full(len(thresholds), int((~self.in_scope).sum())),
            "answered_in": (answered & self.in_scope).sum(axis=1),
            "right_in": (answered & self.in_scope & self.correct).sum(axis=1),
            "answered_oos": (answered & ~self.in_scope).sum(axis=1),
            "touched_oos": (confident & ~self.in_scope).sum(axis=1),
        }


def shares(counts: dict[str, np.ndarray[Any, Any]], z: float) -> tuple[Any, Any, Any]:
    """(in-scope answered right, precision at 25 % out-of-scope traffic, out-of-scope handed off).

    The right share among answered by a one-sided Wilson bound at ``z``; out-of-scope shares as
    measured (clinc150_ml has 20 per language on this side: a bound on so few rejects every point).
    """
    from bot.calibration import wilson_bound  # after main() limits numpy's threads

    n_in, n_oos = np.maximum(counts["n_in"], 1), np.maximum(counts["n_oos"], 1)
    right_low = wilson_bound(counts["right_in"], np.maximum(counts["answered_in"], 1), z, upper=False)
    weight_in = (1 - OOS_SHARE) * counts["answered_in"] / n_in
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(
            counts["answered_in"] > 0,
            weight_in * right_low / (weight_in + OOS_SHARE * counts["answered_oos"] / n_oos),
            1.0,
        )
    return counts["right_in"] / n_in, precision, 1 - counts["touched_oos"] / n_oos


OOS_KEYS = ("n_oos", "answered_oos", "touched_oos")


def robust_point(
    samples: Sequence[Sequence[Any]], oos_pool: Sequence[Sequence[Any]] | None = None
) -> dict[str, Any] | None:
    """The point that answers most (mean over groups) while every group, and all together by a bound, meet the targets.

    With ``oos_pool`` (knowledge bases of every language), the share of out-of-scope messages a
    point answers or touches is measured on all of theirs together, not on each group's own: a
    clinc150_ml language has 20 out-of-scope messages on domains A, so one of them alone moved its
    point (Ukrainian "how many kilowatts did I use this month", 0.49 with use+e5). Each group must
    still hand off ``EACH_OOS_HANDED_OFF`` of its own as measured (one in 20 may slip through).
    """
    groups = [Group.of(g) for g in samples]
    pool = [Group.of(g) for g in oos_pool] if oos_pool is not None else None
    confidences = np.concatenate([g.confidence for g in groups])
    thresholds = np.unique(np.round(np.quantile(confidences, np.linspace(0.0, 1.0, 401)), 4))
    best: tuple[float, float, float, float, float] | None = None
    for margin in MARGINS:
        counts = own = [g.at(thresholds, float(margin)) for g in groups]
        if pool is not None:
            pooled_oos = [g.at(thresholds, float(margin)) for g in pool]
            shared = {key: np.sum([c[key] for c in pooled_oos], axis=0) for key in OOS_KEYS}
            counts = [c | shared for c in counts]
        rows = [shares(c, 0.0) for c in counts]  # every knowledge base, as measured
        pooled = shares({key: np.sum([c[key] for c in counts], axis=0) for key in counts[0]}, Z)  # all, bounded
        right = np.mean([r[0] for r in rows], axis=0)
        precision, handed_off = pooled[1], pooled[2]
        ok = (precision >= PRIOR_PRECISION) & (handed_off >= PRIOR_OOS_HANDED_OFF) & (right > 0)
        ok &= np.min([r[1] for r in rows], axis=0) >= EACH_PRECISION
        ok &= np.min([r[2] for r in rows], axis=0) >= EACH_OOS_HANDED_OFF
        # Each knowledge base still hands off its own language's out-of-scope messages as measured:
        # pooled, `use` alone (which never saw Ukrainian) touched a quarter of them on domains B.
        ok &= np.min([shares(c, 0.0)[2] for c in own], axis=0) >= EACH_OOS_HANDED_OFF
        for position in np.flatnonzero(ok):
            key = (float(right[position]), -float(thresholds[position]), -float(margin))
            if best is None or key > best[:3]:
                best = (*key, float(precision[position]), float(handed_off[position]))
    if best is None:
        return None
    return {
        "threshold": -best[1],
        "margin": -best[2],
        "learned": {
            "in_scope_answered_right": round(best[0], 4),
            "precision_answered_low": round(best[3], 4),
            "oos_handed_off_low": round(best[4], 4),
            "groups": len(groups),
            "out_of_scope": "every language" if pool is not None else "own",
        },
    }


def learn(
    model: Any, encode: Any, split: bot_data.Split, generic: Any, seeds: int, *, pool_oos: bool = True
) -> dict[str, Any]:
    """A point per language: ``"*"`` (English, and any language without its own) and ru, uk, fa.

    One joint point for every language was tried first: Ukrainian and Persian knowledge bases
    need a higher threshold than English ones (use+e5 on domains A: ~0.33 against ~0.25 for the
    same precision), so a joint point gave English half the answers it could.
    """
    groups: dict[str, list[list[Any]]] = {}
    for scenario in LEARN:
        language = "*" if scenario.language == "en" else scenario.language
        for seed in range(seeds):
            groups.setdefault(language, []).append(scored(scenario, split.a, generic, seed, model, encode))
    every = [samples for language_samples in groups.values() for samples in language_samples]
    points: dict[str, Any] = {}
    for language, samples in groups.items():
        # None is kept: a language whose own data shows no point must not borrow English's.
        points[language] = robust_point(samples, every if pool_oos else None)
        print(json.dumps({"language": language, "point": points[language]}), file=sys.stderr, flush=True)
    return points


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default=os.environ.get("BOT_ENCODER", ""), help="default: the product's")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--validate-seeds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="store the points in bot/data/prior.json")
    parser.add_argument(
        "--own-oos",
        action="store_true",
        help="each language's out-of-scope messages alone (as before issue 17's languages)",
    )
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "bench-cache")
    args = parser.parse_args(argv)

    threadpool_limits(limits=1)
    from bench import bot_fewshot  # after main() limits numpy's threads
    from bot.encoders import DEFAULT_ENCODER  # after main() limits numpy's threads
    from bot.prior import PRIOR_FILE, generic_out_of_scope  # after main() limits numpy's threads

    started = time.perf_counter()
    split = bot_data.load()
    model, encoder, caches = cached_encoder(args.encoder or DEFAULT_ENCODER, args.cache_dir)
    points = learn(model, encoder.encode, split, generic_out_of_scope(), args.seeds, pool_oos=not args.own_oos)
    for cache in caches:
        cache.save()
    # Validate on domains B with exactly these points: a temporary file the few-shot bench reads.
    candidate = ROOT / "var" / f"prior-{model.name}.json"
    candidate.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(PRIOR_FILE.read_text(encoding="utf-8")) if PRIOR_FILE.exists() else {}
    encoders = dict(existing.get("encoders", {}))
    encoders[model.name] = points
    candidate.write_text(json.dumps({"encoders": {model.name: points}}), encoding="utf-8")
    validated = bot_fewshot.main(
        ["--encoder", args.encoder or DEFAULT_ENCODER, "--seeds", str(args.validate_seeds), "--prior", str(candidate)]
    )
    for point in (p for p in points.values() if p is not None):
        point["validated"] = {
            r["scenario"]: {
                key: r[key]
                for key in ("answered_share", "precision_answered", "in_scope_answered_right", "oos_handed_off")
            }
            | {"source": r["source"]}
            for r in validated
        }
    if args.write:
        existing.update(
            {
                "about": "Operating points Parley ships per encoder and language (bot.prior): learned by "
                "python -m bench.bot_prior on CLINC150 domains A (and clinc150_ml for ru/uk/fa), "
                "'validated' on domains B the learning never saw. Targets: a language's knowledge bases "
                f"together reach precision among answered >= {PRIOR_PRECISION} at 25 % out-of-scope traffic "
                f"(one-sided 95 % Wilson bound) and hand off >= {PRIOR_OOS_HANDED_OFF} of out-of-scope "
                f"messages; each alone >= {EACH_PRECISION} and >= {EACH_OOS_HANDED_OFF}. Out-of-scope shares "
                "measured on every language's knowledge bases together (learned.out_of_scope: 'every language') "
                "or on the language's own ('own'). null: no point met them in that language.",
                "data": "CLINC150 (Larson et al., EMNLP-IJCNLP 2019, github.com/clinc/oos-eval) and its ru/uk/fa "
                "translations clinc150_ml; CC BY 3.0",
                "encoders": encoders,
            }
        )
        PRIOR_FILE.write_text(json.dumps(existing, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    summary = {"bench": "bot_prior", "encoder": model.name, "points": points}
    summary["elapsed_s"] = round(time.perf_counter() - started, 1)
    summary["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(summary, ensure_ascii=False))
    return summary


if __name__ == "__main__":
    main()
