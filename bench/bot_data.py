"""CLINC150 split by domain for the few-shot benchmark and the shipped prior (no Django).

The prior (``bot/data/prior.json``) is learned on domains A only; every figure the few-shot
benchmark reports is on domains B, whose intents, questions and out-of-scope messages the prior
never saw. Out-of-scope messages have no domain, so their splits are kept apart instead:
``oos_train`` is what Parley ships as generic negatives (``bot/data/generic_oos.json``),
``oos_val`` teaches the prior, ``oos_test`` is cut into the teams' own known out-of-scope pool and
the evaluation set. clinc150_ml (ru/uk/fa) follows the same domain split; its ``oos_test`` is cut
in two halves by id (prior / evaluation), its ``oos_kb`` is shipped as generic negatives.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BENCH_BOT_SHARED", ROOT.parent / "shared" / "data"))  # or --data etc.
DEFAULT_DATA = SHARED / "clinc150" / "data_full.json"
DEFAULT_DOMAINS = SHARED / "clinc150" / "domains.json"
DEFAULT_ML = SHARED / "clinc150_ml" / "clinc150_ml.jsonl"

# Half the domains each; clinc150_ml's 40 intents fall 21 / 19 between them.
DOMAINS_A = ("banking", "kitchen_and_dining", "home", "utility", "meta")
DOMAINS_B = ("credit_cards", "auto_and_commute", "small_talk", "travel", "work")
LANGUAGES = ("en", "ru", "uk", "fa")

TRAIN_PER_INTENT = 20  # example questions kept per intent (the largest scenario uses 20)
EVAL_PER_INTENT = 15  # of CLINC150 test's 30 (A: teaches the prior; B: reported)
TEAM_OOS_POOL = 100  # of oos_test, the teams' own known out-of-scope messages (B scenarios)
EVAL_OOS = 300  # of oos_test, the out-of-scope evaluation messages (B)


@dataclass
class Side:
    """One side of the domain split: intents with their example pool and evaluation questions."""

    train: dict[str, list[str]] = field(default_factory=dict)  # intent -> example questions (en)
    evaluate: list[tuple[str, str]] = field(default_factory=list)  # (text, intent)
    oos: list[str] = field(default_factory=list)  # out-of-scope evaluation messages (en)
    team_oos: list[str] = field(default_factory=list)  # a team's own known out-of-scope pool (en)
    # clinc150_ml: language -> intent -> kb questions; language -> (text, intent) tests; -> oos tests
    ml_train: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    ml_evaluate: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    ml_oos: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Split:
    a: Side
    b: Side
    generic_oos: list[tuple[str, str]]  # (text, language): what Parley ships

    def texts(self) -> list[str]:
        """Every text either side uses (what the embedding cache must hold)."""
        out: list[str] = [t for t, _ in self.generic_oos]
        for side in (self.a, self.b):
            out += [t for texts in side.train.values() for t in texts]
            out += [t for t, _ in side.evaluate] + side.oos + side.team_oos
            for language in side.ml_train:
                out += [t for texts in side.ml_train[language].values() for t in texts]
                out += [t for t, _ in side.ml_evaluate[language]] + side.ml_oos[language]
        return list(dict.fromkeys(out))


def load(data: Path = DEFAULT_DATA, domains: Path = DEFAULT_DOMAINS, ml: Path = DEFAULT_ML, *, seed: int = 0) -> Split:
    full = json.loads(data.read_text(encoding="utf-8"))
    by_domain = json.loads(domains.read_text(encoding="utf-8"))
    rng = random.Random(seed)
    sides = {"a": Side(), "b": Side()}
    domain_of = {intent: domain for domain, intents in by_domain.items() for intent in intents}
    side_of = {intent: ("a" if domain in DOMAINS_A else "b") for intent, domain in domain_of.items()}
    pools: dict[str, list[str]] = {}
    for text, intent in full["train"]:
        pools.setdefault(intent, []).append(text)
    for intent in sorted(pools):
        sides[side_of[intent]].train[intent] = rng.sample(pools[intent], TRAIN_PER_INTENT)
    tests: dict[str, list[str]] = {}
    for text, intent in full["test"]:
        tests.setdefault(intent, []).append(text)
    for intent in sorted(tests):
        for text in rng.sample(tests[intent], EVAL_PER_INTENT):
            sides[side_of[intent]].evaluate.append((text, intent))
    sides["a"].oos = [t for t, _ in full["oos_val"]]
    oos_test = [t for t, _ in full["oos_test"]]
    rng.shuffle(oos_test)
    sides["b"].team_oos = oos_test[:TEAM_OOS_POOL]
    sides["b"].oos = oos_test[TEAM_OOS_POOL : TEAM_OOS_POOL + EVAL_OOS]
    generic = [(t, "en") for t, _ in full["oos_train"]]
    rows = [json.loads(line) for line in ml.read_text(encoding="utf-8").splitlines() if line.strip()]
    oos_rows = sorted((r for r in rows if r["split"] == "oos_test"), key=lambda r: r["id"])
    halves = {"a": oos_rows[: len(oos_rows) // 2], "b": oos_rows[len(oos_rows) // 2 :]}
    for language in LANGUAGES:
        for name, side in sides.items():
            side.ml_train[language] = {}
            side.ml_evaluate[language] = []
            side.ml_oos[language] = [r[language] for r in halves[name]]
        for row in rows:
            if row["split"] == "oos_kb" and language != "en":  # English: CLINC150's oos_train has them
                generic.append((row[language], language))
            if row["split"] not in {"kb", "test"}:
                continue
            side = sides[side_of[row["intent"]]]
            if row["split"] == "kb":
                side.ml_train[language].setdefault(row["intent"], []).append(row[language])
            else:
                side.ml_evaluate[language].append((row[language], row["intent"]))
    return Split(sides["a"], sides["b"], generic)
