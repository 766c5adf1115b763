"""A new team's bot, measured on domains the shipped prior never saw (issue 17).

    python -m bench.bot_fewshot [--encoder SPEC] [--seeds N] [--no-prior] [--prior PATH] [--only NAME]

(also ``python -m bench.bot --few-shot``, which runs this.)

Each scenario builds knowledge bases from CLINC150 domains B (``bench.bot_data``): articles are
intents, example questions sampled from their train questions (or clinc150_ml's ``kb`` split, in
en/ru/uk/fa), the team's own known out-of-scope messages from a pool cut out of ``oos_test``. Then
it does what the product does, without the database: held-out folds + the product's choice of
operating point (``bot.prior.choose_points``: the team's own calibration when it proves one, else
the shipped prior), the full index (generic out-of-scope messages included), and scores domain
B's test questions and out-of-scope messages once. The full model decides (no cascade).

Prints one JSON line per scenario, figures averaged over seeds (``min`` / ``max`` beside them):
``in_scope_answered_right`` and ``oos_handed_off`` (shares of each population),
``precision_answered`` and ``answered_share`` re-weighted to 25 % out-of-scope traffic (the
calibration targets' mix). The prior itself is learned on domains A by ``bench.bot_prior``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from bench import bot_data

ROOT = Path(__file__).resolve().parent.parent
OOS_SHARE = 0.25


@dataclass(frozen=True)
class Scenario:
    """One setting: where the knowledge base and the customers' messages come from, and its size."""

    name: str
    articles: int
    per_article: int
    team_oos: int
    kb_language: str = "en"  # the knowledge base's language
    language: str = "en"  # the customers'
    source: str = "clinc150"  # or "clinc150_ml"


SCENARIOS = [
    Scenario("en_20x5_oos0", 20, 5, 0),
    Scenario("en_40x10_oos30", 40, 10, 30),
    Scenario("en_50x20_oos80", 50, 20, 80),
    *(Scenario(f"ml_{lang}_19x5_oos0", 19, 5, 0, lang, lang, "clinc150_ml") for lang in bot_data.LANGUAGES),
    *(Scenario(f"ml_{lang}_19x8_oos0", 19, 8, 0, lang, lang, "clinc150_ml") for lang in bot_data.LANGUAGES),
    # A knowledge base in English answering customers who write another language: reported apart.
    *(Scenario(f"xl_en_kb_{lang}_19x8_oos0", 19, 8, 0, "en", lang, "clinc150_ml") for lang in ("ru", "uk", "fa")),
]


def cached_encoder(spec: str, cache_dir: Path | None) -> tuple[Any, Any, list[Any]]:
    """(the model, an encoder that reads and fills the disk cache, the caches to save)."""
    from bench.bot import disk_cached  # after main() limits numpy's threads
    from bot.encoders import build_encoder  # after main() limits numpy's threads

    model = build_encoder(spec)
    encoder, caches = disk_cached(model, cache_dir)
    return model, encoder, caches


@dataclass
class Built:
    """One knowledge base as the product would hold it, and the messages to score against it."""

    examples: list[Any]  # bot.calibration.Labelled
    oos: list[Any]  # known out-of-scope: the team's, then the shipped generic ones
    queries: list[tuple[str, int | None]]  # (text, right article id or None)


def build(scenario: Scenario, side: bot_data.Side, generic: Sequence[tuple[str, str]], seed: int) -> Built:
    from bot.calibration import Labelled  # after main() limits numpy's threads

    rng = random.Random(f"{scenario.name}:{seed}")
    if scenario.source == "clinc150":
        pools, tests = side.train, side.evaluate
        oos_tests, team_pool = side.oos, side.team_oos
    else:
        pools, tests = side.ml_train[scenario.kb_language], side.ml_evaluate[scenario.language]
        oos_tests, team_pool = side.ml_oos[scenario.language], []
    intents = sorted(rng.sample(sorted(pools), min(scenario.articles, len(pools))))
    ids = {intent: number for number, intent in enumerate(intents, start=1)}
    examples = [
        Labelled(ids[intent], text, scenario.kb_language)
        for intent in intents
        for text in rng.sample(pools[intent], min(scenario.per_article, len(pools[intent])))
    ]
    oos = [Labelled(0, text, "en") for text in rng.sample(team_pool, min(scenario.team_oos, len(team_pool)))]
    oos += [Labelled(0, text, language, generic=True) for text, language in generic]
    queries: list[tuple[str, int | None]] = [(text, ids[intent]) for text, intent in tests if intent in ids]
    queries += [(text, None) for text in oos_tests]
    return Built(examples, oos, queries)


def run_one(
    built: Built,
    *,
    model: Any,
    encode: Callable[[Sequence[str]], Any],
    language: str,
    prior: Path | None,
    targets: Any = None,
) -> tuple[list[Any], dict[str, Any]]:
    """Calibrate as the product does, then score the queries: (samples, what was chosen)."""
    from bot.calibration import (  # after main() limits numpy's threads
        ALL_LANGUAGES,  # after main() limits numpy's threads
        Targets,
        samples_from,
        score_held_out,
    )
    from bot.engine import KnowledgeIndex  # after main() limits numpy's threads
    from bot.prior import PRIOR_FILE, choose_points  # after main() limits numpy's threads

    targets = targets or Targets()
    vectors = encode([e.text for e in built.examples])
    oos_vectors = encode([e.text for e in built.oos])
    held = score_held_out(
        encoder=model, examples=built.examples, vectors=vectors, oos=built.oos, oos_vectors=oos_vectors
    )
    choices = choose_points(held, targets, encoder=model.name, use_prior=prior is not None, path=prior or PRIOR_FILE)
    _, choice = choices.get(language) or choices[ALL_LANGUAGES]
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
    rankings = index.rank_vectors(index.reweight(encode(texts)), texts=texts, language=language)
    samples = samples_from(rankings, [expected for _, expected in built.queries])
    chosen = {
        "source": choice.source,
        "threshold": choice.result.point.threshold,
        "margin": choice.result.point.margin,
        "calibrated_language": language if language in choices else ALL_LANGUAGES,
        "prior_rejected": choice.prior_rejected,
        "feasible": choice.result.feasible,
    }
    return samples, chosen


def summarise(outcomes: list[Any], chosen: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("answered_share", "precision_answered", "in_scope_answered_right", "oos_handed_off"):
        values = [getattr(o, key) for o in outcomes]
        out[key] = round(float(np.mean(values)), 4)
        out[f"{key}_min"] = round(float(np.min(values)), 4)
        out[f"{key}_max"] = round(float(np.max(values)), 4)
    out["source"] = sorted({c["source"] for c in chosen})
    out["feasible"] = sum(c["feasible"] for c in chosen)
    out["thresholds"] = [round(c["threshold"], 4) if c["threshold"] < 1 else None for c in chosen]
    return out


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default=os.environ.get("BOT_ENCODER", ""), help="default: the product's")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default="", help="scenarios whose name contains this")
    parser.add_argument("--no-prior", action="store_true", help="the team's own calibration only (as before)")
    parser.add_argument("--prior", type=Path, default=None, help="default: the one shipped in bot/data")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "bench-cache")
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args(argv)

    threadpool_limits(limits=1)  # as in the bot's process
    from bot.calibration import evaluate  # after main() limits numpy's threads
    from bot.encoders import DEFAULT_ENCODER  # after main() limits numpy's threads
    from bot.prior import PRIOR_FILE, generic_out_of_scope  # after main() limits numpy's threads

    started, load_at_start = time.perf_counter(), os.getloadavg()[0]
    split = bot_data.load()
    model, encoder, caches = cached_encoder(args.encoder or DEFAULT_ENCODER, None if args.no_cache else args.cache_dir)
    prior = None if args.no_prior else (args.prior or PRIOR_FILE)
    results = []
    for scenario in SCENARIOS:
        if args.only and args.only not in scenario.name:
            continue
        outcomes, chosen = [], []
        for seed in range(args.seeds):
            built = build(scenario, split.b, generic_out_of_scope(), seed)
            samples, choice = run_one(
                built, model=model, encode=encoder.encode, language=scenario.language, prior=prior
            )
            point = _point(choice)
            outcomes.append(evaluate(samples, point, oos_share=OOS_SHARE))
            chosen.append(choice)
        for cache in caches:
            cache.save()
        result = {
            "bench": "bot_fewshot",
            "scenario": scenario.name,
            "domains": "B (never seen by the prior)",
            "kb": f"{scenario.articles}x{scenario.per_article} {scenario.kb_language}",
            "customers": scenario.language,
            "team_oos": scenario.team_oos,
            "prior": "off" if prior is None else str(prior.relative_to(ROOT) if prior.is_relative_to(ROOT) else prior),
            "encoder": model.name,
            "seeds": args.seeds,
            **summarise(outcomes, chosen),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        results.append(result)
        print(json.dumps(result, ensure_ascii=False), flush=True)
    print(
        json.dumps(
            {
                "bench": "bot_fewshot",
                "elapsed_s": round(time.perf_counter() - started, 1),
                "load_avg_at_start_1m": round(load_at_start, 2),
            }
        ),
        file=sys.stderr,
    )
    return results


def _point(choice: dict[str, Any]) -> Any:
    from bot.engine import OperatingPoint  # after main() limits numpy's threads

    return OperatingPoint(choice["threshold"], choice["margin"])


if __name__ == "__main__":
    main()
