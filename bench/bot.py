"""The bot's honest benchmark on CLINC150 (Larson et al., 2019), plus a language smoke test.

    python -m bench.bot [--data PATH] [--xling PATH] [--encoder SPEC] [--latency N] [--no-cascade]
    python -m bench.bot --few-shot [bench.bot_fewshot's options]   (a new team's knowledge bases)

(``--encoder use+ngrams``: the head also reads the texts' character n-grams.)

With an encoder of several parts (``use+e5``) the product runs a cascade (``engine.Cascade``): the
first part with its own head decides alone where val shows it agrees with the full model. Its
cut-offs are chosen on val + oos_val by ``calibration.choose_cascade``, as ``bot calibrate`` does on
held-out folds; the operating-point fields are then the cascade's, ``full_only`` the full model's
alone, and the latency of both paths is timed message by message in the same run. The paper-rule
fields stay the full model's (one threshold on one confidence scale).

Each of the 150 intents is an article whose train utterances are its example questions; the 100
out-of-scope train queries are the "known out-of-scope" messages the product keeps. Everything is
chosen on val + oos_val only (the paper's threshold, the product's operating point); test +
oos_test are scored once, at the end. It runs the product's own code (``KnowledgeIndex``,
``decide``, ``choose_point``, ``detect_language``), in memory, without the database.

Prints one JSON line. Bulk vectors are cached in ``var/bench-cache`` (``--no-cache`` to skip): the
multilingual e5 model embeds ~25-50 texts/s on two cores, and the 24k texts do not change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "clinc150" / "data_full.json"
DEFAULT_XLING = ROOT.parent / "shared" / "data" / "clinc150_xling_smoke" / "xling_smoke.jsonl"
PAPER_BERT = {"in_scope_accuracy": 0.962, "oos_recall": 0.523}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class DiskCachedEncoder:
    """Wraps one encoder with an on-disk vector cache (a bench convenience; the product caches in the DB)."""

    def __init__(self, inner: Any, directory: Path) -> None:
        self.inner = inner
        self.name, self.dim, self.idf_weighting = inner.name, inner.dim, inner.idf_weighting
        if hasattr(inner, "languages"):  # the languages it was trained on (ConcatEncoder.part_weights)
            self.languages = inner.languages
        self.path = directory / f"{inner.name}.npz"
        self.vectors: dict[str, np.ndarray[Any, Any]] = {}
        if self.path.exists():
            with np.load(self.path) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        self.dirty = False

    def encode(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self.vectors}.items())
        for start in range(0, len(missing), 256):
            chunk = missing[start : start + 256]
            for (key, _), vector in zip(chunk, self.inner.encode([t for _, t in chunk]), strict=True):
                self.vectors[key] = vector
            self.dirty = True
            print(f"  {self.name}: embedded {start + len(chunk)}/{len(missing)}", file=sys.stderr, flush=True)
        return np.vstack([self.vectors[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, self.dim))

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self.vectors)
            np.savez(self.path, keys=np.array(keys), vectors=np.vstack([self.vectors[k] for k in keys]))


def disk_cached(encoder: Any, directory: Path | None) -> tuple[Any, list[DiskCachedEncoder]]:
    from bot.encoders import ConcatEncoder, WithNgrams  # after main() limits numpy's threads

    if directory is None:
        return encoder, []
    if isinstance(encoder, WithNgrams):  # the inner encoder's vectors: the n-grams are the head's
        return disk_cached(encoder.inner, directory)
    if isinstance(encoder, ConcatEncoder):
        parts = [DiskCachedEncoder(part, directory) for part in encoder.parts]
        return ConcatEncoder(parts), parts
    part = DiskCachedEncoder(encoder, directory)
    return part, [part]


def _samples(
    index: Any, cheap: Any, encoder: Any, data: dict[str, Any], split: str, oos_split: str, labels: dict[str, int]
) -> tuple[Any, Any]:
    """The split scored by the full index, and by the cascade's cheap stage (None without one)."""
    from bot.calibration import samples_from  # after main() limits numpy's threads

    texts = [t for t, _ in data[split]] + [t for t, _ in data[oos_split]]
    expected: list[int | None] = [labels[label] for _, label in data[split]]
    expected += [None] * len(data[oos_split])
    vectors = encoder.encode(texts)
    full = samples_from(index.rank_vectors(index.reweight(vectors), texts=texts, language="en"), expected)
    if cheap is None:
        return full, None
    first = cheap.reweight(encoder.first_part_of(vectors))
    return full, samples_from(cheap.rank_vectors(first, texts=texts, language="en"), expected)


def _paper(samples: Sequence[Any], threshold: float) -> dict[str, float]:
    in_scope = [s for s in samples if s.in_scope]
    oos = [s for s in samples if not s.in_scope]
    return {
        "threshold": round(threshold, 4),
        "in_scope_accuracy": round(sum(s.correct and s.confidence >= threshold for s in in_scope) / len(in_scope), 4),
        "oos_recall": round(sum(s.confidence < threshold for s in oos) / len(oos), 4),
        "top1_no_threshold": round(sum(s.correct for s in in_scope) / len(in_scope), 4),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("BENCH_BOT_DATA", DEFAULT_DATA)))
    parser.add_argument("--xling", type=Path, default=Path(os.environ.get("BENCH_BOT_XLING", DEFAULT_XLING)))
    parser.add_argument("--encoder", default=os.environ.get("BOT_ENCODER", ""), help="default: the product's")
    parser.add_argument("--latency", type=int, default=500, help="messages timed one by one")
    parser.add_argument("--no-known-oos", action="store_true", help="do not give the head oos_train")
    parser.add_argument("--no-cascade", action="store_true", help="the full model decides every message")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "bench-cache")
    args = parser.parse_args(argv)

    threadpool_limits(limits=1)  # as in the bot's process: numpy's threads would fight the encoder's
    from bot.calibration import (  # after main() limits numpy's threads
        Targets,
        cascade_disagreement,
        choose_cascade,
        choose_point,
        evaluate,
        evaluate_cascade,
        paper_threshold,
        pick_point,
    )
    from bot.encoders import DEFAULT_ENCODER, build_encoder  # after main() limits numpy's threads
    from bot.engine import Cascade, KnowledgeIndex, cheap_stage, decide  # after main() limits numpy's threads
    from bot.language import detect_language  # after main() limits numpy's threads

    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    data = json.loads(args.data.read_text(encoding="utf-8"))
    spec = args.encoder or DEFAULT_ENCODER
    model = build_encoder(spec)
    encoder, caches = disk_cached(model, None if args.no_cache else args.cache_dir)
    intents = sorted({label for _, label in data["train"]})
    labels = {intent: number for number, intent in enumerate(intents, start=1)}

    train_vectors = encoder.encode([t for t, _ in data["train"]])
    oos_vectors = None if args.no_known_oos else encoder.encode([t for t, _ in data["oos_train"]])
    fit_started = time.perf_counter()  # the head's training, what a knowledge-base change costs
    index = KnowledgeIndex(
        encoder=model,
        vectors=train_vectors,
        article_ids=np.array([labels[label] for _, label in data["train"]]),
        oos_vectors=oos_vectors,
        texts=[t for t, _ in data["train"]],
        oos_texts=None if args.no_known_oos else [t for t, _ in data["oos_train"]],
    )
    index_build_s = time.perf_counter() - fit_started
    fit_started = time.perf_counter()
    cheap = None if args.no_cascade else cheap_stage(index)  # the cascade's first stage, its own head
    cheap_build_s = time.perf_counter() - fit_started

    # Calibration: val + oos_val only.
    val, cheap_val = _samples(index, cheap, encoder, data, "val", "oos_val", labels)
    threshold = paper_threshold(val)
    targets = Targets()
    calibration = choose_point(val, targets)
    points = {"en": calibration.point, "*": calibration.point}
    chosen_cascade = (
        choose_cascade(cheap_val, val, calibration.point, targets)
        if cheap_val is not None and calibration.feasible
        else None
    )
    cut = chosen_cascade.cut if chosen_cascade is not None else None

    # Test: scored once.
    test, cheap_test = _samples(index, cheap, encoder, data, "test", "oos_test", labels)
    for cache in caches:
        cache.save()
    full_outcome = evaluate(test, calibration.point)  # the test's own mix: 4,500 in scope, 1,000 out of scope
    outcome, cheap_share, disagreement = full_outcome, 0.0, 0.0
    if cut is not None and cheap_test is not None:
        outcome, cheap_share = evaluate_cascade(cheap_test, test, calibration.point, cut)
        disagreement = cascade_disagreement(cheap_test, test, calibration.point, cut)
    cascade = Cascade(index, cheap)

    # Latency: the whole path for one message (language, encode, rank, decide), encoder not cached.
    rng = np.random.default_rng(0)
    pool = [t for t, _ in data["test"]] + [t for t, _ in data["oos_test"]]
    chosen = [pool[i] for i in rng.choice(len(pool), size=min(args.latency, len(pool)), replace=False)]
    for text in chosen[:10]:
        cascade.triage(text, point=calibration.point, cut=cut)  # warm up
        index.rank(text)
    timings: dict[str, list[float]] = {"product": [], "full_only": []}
    cpu_timings: dict[str, list[float]] = {"product": [], "full_only": []}
    load_before_latency = os.getloadavg()[0]
    for number, text in enumerate(chosen):
        # Both paths for every message, in alternating order: the same machine load for each.
        for path in ("product", "full_only") if number % 2 else ("full_only", "product"):
            t0, c0 = time.perf_counter(), time.process_time()
            language = detect_language(text)
            point = pick_point(points, language)
            assert point is not None
            if path == "product":
                cascade.triage(text, point=point, cut=cut, language=language)
            else:
                decide(index.rank(text, language=language), point)
            timings[path].append((time.perf_counter() - t0) * 1000)
            cpu_timings[path].append((time.process_time() - c0) * 1000)
    load_after_latency = os.getloadavg()[0]

    # Languages: an English knowledge base, queries translated (not reviewed by native speakers).
    languages: dict[str, Any] = {}
    if args.xling.exists():
        rows = [json.loads(line) for line in args.xling.read_text(encoding="utf-8").splitlines() if line.strip()]
        for language in ("en", "ru", "uk", "fa"):
            texts = [row[language] for row in rows]
            expected = [labels.get(row["intent"]) for row in rows]
            detected = [detect_language(text) for text in texts]
            in_scope = [e is not None for e in expected]
            rankings = index.rank_vectors(index.reweight(model.encode(texts)), texts=texts)
            verdicts = [
                cascade.triage(text, point=pick_point(points, d) or calibration.point, cut=cut, language=d)
                for text, d in zip(texts, detected, strict=True)
            ]
            top1 = [r.top is not None and r.top.article_id == e for r, e in zip(rankings, expected, strict=True)]
            n_in = sum(in_scope)
            languages[language] = {
                "n_in_scope": n_in,
                "n_oos": len(rows) - n_in,
                "detected_as_language": round(sum(d == language for d in detected) / len(rows), 2),
                "top1": round(sum(t for t, i in zip(top1, in_scope, strict=True) if i) / n_in, 3),
                "in_scope_answered_right": round(
                    sum(v.action == "answer" and t for v, t, i in zip(verdicts, top1, in_scope, strict=True) if i)
                    / n_in,
                    3,
                ),
                "in_scope_handed_off": round(
                    sum(v.action == "handoff" for v, i in zip(verdicts, in_scope, strict=True) if i) / n_in, 3
                ),
                "oos_handed_off": round(
                    sum(v.action == "handoff" for v, i in zip(verdicts, in_scope, strict=True) if not i)
                    / max(len(rows) - n_in, 1),
                    3,
                ),
            }

    paper = _paper(test, threshold)
    result = {
        "bench": "bot",
        "dataset": "clinc150 data_full: calibrated on val+oos_val, reported on test+oos_test",
        "encoder": model.name,
        "scorer": "confidence = logistic-regression head probability x mean of top-"
        + f"{index.top_k} example cosines"
        + (f"; head also reads char 2-5-gram TF-IDF (weight {index.lexical_weight})" if index.lexical else "")
        + ("" if args.no_known_oos else "; oos_train as a known out-of-scope class of the head"),
        "calibration": "val+oos_val only; operating point meets its targets at one-sided 95% Wilson bounds",
        "in_scope_accuracy": paper["in_scope_accuracy"],
        "oos_recall": paper["oos_recall"],
        "paper_rule": paper,
        "paper_bert": PAPER_BERT,
        "operating_point": {
            "threshold": round(calibration.point.threshold, 4),
            "margin": round(calibration.point.margin, 4),
            "feasible_on_val": calibration.feasible,
            "targets": {
                "precision": targets.precision,
                "oos_handed_off": targets.oos_handed_off,
                "oos_share": targets.oos_share,
            },
        },
        "answered_share": round(outcome.answered_share, 4),
        "precision_answered": round(outcome.precision_answered, 4),
        "in_scope_answered_right": round(outcome.in_scope_answered_right, 4),
        "in_scope_clarified": round(outcome.in_scope_clarified, 4),
        "oos_handed_off": round(outcome.oos_handed_off, 4),
        # Of the test messages, decided by the cascade's cheap stage alone (0 without a cascade).
        "cheap_stage_share": round(cheap_share, 4),
        "p50_ms": round(float(np.percentile(timings["product"], 50)), 2),
        "p95_ms": round(float(np.percentile(timings["product"], 95)), 2),
        # CPU time of the process per message: what the wall time would be on an idle machine
        # (the two cores here are shared with other jobs; load_avg_1m says how busy they were).
        "cpu_p50_ms": round(float(np.percentile(cpu_timings["product"], 50)), 2),
        "cpu_p95_ms": round(float(np.percentile(cpu_timings["product"], 95)), 2),
        "latency_messages": len(chosen),
        "latency_load_avg_1m": [round(load_before_latency, 2), round(load_after_latency, 2)],
        "cascade": {
            "enabled": cut is not None,
            "cheap_encoder": cheap.encoder.name if cheap is not None else None,
            "calibrated_on_val": chosen_cascade.stats() if chosen_cascade is not None else None,
            "test_disagreement_with_full": round(disagreement, 4),
            "cheap_head_build_s": round(cheap_build_s, 1),
        },
        # The full model deciding every message (the default before the cascade), same run.
        "full_only": {
            "answered_share": round(full_outcome.answered_share, 4),
            "precision_answered": round(full_outcome.precision_answered, 4),
            "in_scope_answered_right": round(full_outcome.in_scope_answered_right, 4),
            "oos_handed_off": round(full_outcome.oos_handed_off, 4),
            "p50_ms": round(float(np.percentile(timings["full_only"], 50)), 2),
            "p95_ms": round(float(np.percentile(timings["full_only"], 95)), 2),
            "cpu_p50_ms": round(float(np.percentile(cpu_timings["full_only"], 50)), 2),
            "cpu_p95_ms": round(float(np.percentile(cpu_timings["full_only"], 95)), 2),
        },
        "rss_mb": round(_rss_mb(), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "index_build_s": round(index_build_s + cheap_build_s, 1),
        "languages": languages,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "load_avg_at_start_1m": round(load_at_start, 2),
        "cpus": os.cpu_count(),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, ensure_ascii=False))
    return result


if __name__ == "__main__":
    if "--few-shot" in sys.argv[1:]:
        from bench import bot_fewshot  # only this mode needs it

        bot_fewshot.main([arg for arg in sys.argv[1:] if arg != "--few-shot"])
    else:
        main()
