"""The answering engine: rank articles for a message, then answer, ask, or hand off.

Pure numpy and scikit-learn, no Django (the process limits BLAS to one thread when it loads an
encoder: ``bot.encoders.limit_threads``): the product (``bot.knowledge``) and the benchmark
(``bench.bot``) build the same :class:`KnowledgeIndex` from the same inputs.

Scoring. Every article is found through its example questions. The similarity of a message to an
article is the mean of its top-k cosines to that article's examples. On top of the vectors a
multinomial logistic-regression head is retrained whenever the knowledge base changes. When the
index is given the example texts and the encoder asks for it (``encoders.WithNgrams``), the head
also reads their character 2-5-gram TF-IDF, fitted on the knowledge base itself: the encoder knows
meaning, the n-grams know the knowledge base's own words (product names, codes, typos). Whether
that helps depends on the encoder; bench/bot.py measures it. The confidence the decision uses is
the head's probability times the similarity. Known out-of-scope messages, when there are any, are
one more class of the head, so their probability mass lowers every article's confidence.

Cascade. With an encoder of several parts (``use+e5``), the first part alone with its own head is a
cheap first stage (:class:`Cascade`): it decides by itself when its confidence is so high, or so
low, that the full model agrees with it on held-out data (cut-offs: :class:`CascadePoint`, chosen
by ``calibration.choose_cascade``); only the other messages pay for the other parts' encoders.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse  # type: ignore[import-untyped]

from bot.encoders import ConcatEncoder, Encoder, Vectors

OUT_OF_SCOPE = -1  # the label of known out-of-scope messages in the head
# The shipped out-of-scope messages weigh at most this many times the example questions in the head.
GENERIC_OOS_RATIO = 2.5

# The head's lexical features: character 2-5-grams within words, sublinear TF-IDF, the most frequent
# LEXICAL_FEATURES of the knowledge base (bounds the head's size: 151 classes x 20k ~ 25 MB).
LEXICAL_FEATURES = 20_000


@dataclass(frozen=True)
class Candidate:
    article_id: int
    confidence: float  # what the threshold and the margin are compared with
    similarity: float  # mean of the top-k cosines to the article's examples


@dataclass(frozen=True)
class Ranking:
    """Articles for one message, best first (only those the channel may use)."""

    candidates: tuple[Candidate, ...]
    language: str = ""

    @property
    def top(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def runner_up(self) -> Candidate | None:
        return self.candidates[1] if len(self.candidates) > 1 else None

    @property
    def confidence(self) -> float:
        return self.candidates[0].confidence if self.candidates else 0.0

    @property
    def gap(self) -> float:
        """How far the best article is ahead of the runner-up."""
        if not self.candidates:
            return 0.0
        second = self.candidates[1].confidence if len(self.candidates) > 1 else 0.0
        return self.candidates[0].confidence - second


class Action(enum.StrEnum):
    ANSWER = "answer"
    CLARIFY = "clarify"  # "did you mean A or B?"
    HANDOFF = "handoff"


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    margin: float


class Stage(enum.StrEnum):
    """Which part of a :class:`Cascade` decided (``FULL`` also when there is no cascade)."""

    CHEAP = "cheap"
    FULL = "full"


@dataclass(frozen=True)
class CascadePoint:
    """When the cheap stage decides alone, on its own confidence scale.

    It answers its best article at ``answer_above`` or more (and at least the operating point's
    margin ahead of the runner-up), hands off below ``handoff_below``; between the two, the full
    model decides. ``math.inf`` / 0 switch a side off.
    """

    answer_above: float
    handoff_below: float

    def __post_init__(self) -> None:
        if self.handoff_below > self.answer_above:
            raise ValueError("a cascade cannot hand off above the confidence at which it answers")


@dataclass(frozen=True)
class Verdict:
    action: Action
    ranking: Ranking
    point: OperatingPoint
    reason: str  # "confident", "close_runner_up", "not_confident", "empty_knowledge_base"
    stage: Stage = Stage.FULL  # the cascade's stage whose ranking and point these are

    @property
    def article_ids(self) -> list[int]:
        if self.action is Action.ANSWER and self.ranking.top:
            return [self.ranking.top.article_id]
        if self.action is Action.CLARIFY:
            return [c.article_id for c in self.ranking.candidates[:2]]
        return []

    def as_log(self) -> dict[str, Any]:
        """What a hand-off note and the decision log keep: the scores behind the decision."""
        return {
            "action": self.action.value,
            "reason": self.reason,
            "stage": self.stage.value,
            "language": self.ranking.language,
            "threshold": round(self.point.threshold, 4) if math.isfinite(self.point.threshold) else None,
            "margin": round(self.point.margin, 4),
            "candidates": [
                {"article_id": c.article_id, "confidence": round(c.confidence, 4), "similarity": round(c.similarity, 4)}
                for c in self.ranking.candidates[:3]
            ],
        }


def decide(ranking: Ranking, point: OperatingPoint) -> Verdict:
    """Answer when confident and clearly ahead; ask between the best two when they are close; else hand off."""
    top = ranking.top
    if top is None:
        return Verdict(Action.HANDOFF, ranking, point, "empty_knowledge_base")
    if top.confidence < point.threshold:
        return Verdict(Action.HANDOFF, ranking, point, "not_confident")
    if ranking.runner_up is not None and ranking.gap < point.margin:
        return Verdict(Action.CLARIFY, ranking, point, "close_runner_up")
    return Verdict(Action.ANSWER, ranking, point, "confident")


@dataclass
class KnowledgeIndex:
    """Example-question vectors of the active articles, and the head trained on them.

    Build one per knowledge-base version and encoder; it is read-only afterwards, so one process
    may share it between threads.
    """

    encoder: Encoder
    vectors: Vectors  # (n_examples, dim), L2-normalised
    article_ids: np.ndarray[Any, np.dtype[np.int64]]  # (n_examples,)
    oos_vectors: Vectors | None = None  # known out-of-scope messages
    # Which of ``oos_vectors`` are the generic ones Parley ships (bot.prior): in a knowledge base
    # smaller than the ones the prior was learned on, their weight in the head is scaled down.
    oos_generic: np.ndarray[Any, np.dtype[np.bool_]] | None = None
    # The texts behind ``vectors`` and ``oos_vectors``: given, the head adds their lexical features
    # (and then every query must come with its text, see ``rank_vectors``).
    texts: Sequence[str] | None = None
    oos_texts: Sequence[str] | None = None
    # The language of each of ``vectors`` and ``oos_vectors``: given, an encoder of several parts
    # weighs them per language (``ConcatEncoder.for_languages``), and so does it each query by the
    # language ``rank_vectors`` is given.
    languages: Sequence[str] | None = None
    oos_languages: Sequence[str] | None = None
    # Weight of the lexical features in the head; None: the encoder's ``lexical_weight`` (0 if it
    # has none), since whether they help depends on the encoder (see encoders.py).
    lexical_weight: float | None = None
    top_k: int = 3
    shortlist: int = 10
    use_head: bool = True
    head_c: float = 10.0
    articles: np.ndarray[Any, np.dtype[np.int64]] = field(init=False)
    _idf: np.ndarray[Any, np.dtype[np.float32]] | None = field(init=False, default=None)
    _head: Any = field(init=False, default=None)
    _lexical: Any = field(init=False, default=None)  # the fitted TfidfVectorizer, when the head uses one
    _head_columns: np.ndarray[Any, np.dtype[np.int64]] = field(init=False)

    def __post_init__(self) -> None:
        if self.lexical_weight is None:
            self.lexical_weight = float(getattr(self.encoder, "lexical_weight", 0.0))
        self.article_ids = np.asarray(self.article_ids, dtype=np.int64)
        self.articles = np.unique(self.article_ids)
        if self.languages is not None:
            self.vectors = self.for_languages(self.vectors, self.languages)
        if self.oos_vectors is not None and self.oos_languages is not None:
            self.oos_vectors = self.for_languages(self.oos_vectors, self.oos_languages)
        if self.encoder.idf_weighting and len(self.vectors):
            document_frequency = (self.vectors > 0).sum(axis=0)
            self._idf = (np.log((1 + len(self.vectors)) / (1 + document_frequency)) + 1).astype(np.float32)
            self.vectors = self.reweight(self.vectors)
            if self.oos_vectors is not None:
                self.oos_vectors = self.reweight(self.oos_vectors)
        # Column j of the similarity matrix belongs to self.articles[self._group[j]].
        self._group = np.searchsorted(self.articles, self.article_ids)
        self._members = [np.flatnonzero(self._group == i) for i in range(len(self.articles))]
        if self.use_head:
            self._fit_head()

    def for_languages(self, vectors: Vectors, languages: Sequence[str]) -> Vectors:
        """``vectors`` weighed per part by each one's language, when the encoder has parts (else as they are)."""
        if isinstance(self.encoder, ConcatEncoder) and len(vectors):
            return self.encoder.for_languages(vectors, languages)
        return vectors

    def reweight(self, vectors: Vectors) -> Vectors:
        if self._idf is None:
            return vectors
        weighted = vectors * self._idf
        norms = np.linalg.norm(weighted, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        normalised: Vectors = (weighted / norms).astype(np.float32)
        return normalised

    @property
    def lexical(self) -> bool:
        """Whether the head reads the texts' character n-grams (then queries need their texts)."""
        return self._lexical is not None

    def _fit_lexical(self, texts: Sequence[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]

        # A sparse encoder (the TF-IDF fallback) already is n-grams: nothing to add.
        if self.encoder.idf_weighting or (self.lexical_weight or 0.0) <= 0 or not any(text.strip() for text in texts):
            return
        vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, max_features=LEXICAL_FEATURES, dtype=np.float32
        )
        vectorizer.fit(texts)
        if hasattr(vectorizer, "stop_words_"):
            del vectorizer.stop_words_  # every n-gram cut by max_features: only pickling needs it
        self._lexical = vectorizer

    def features(self, queries: Vectors, texts: Sequence[str] | None = None) -> Any:
        """What the head reads: the vectors, and the texts' lexical features when it has them."""
        if self._lexical is None:
            return queries
        if texts is None or len(texts) != len(queries):
            raise ValueError("this index's head reads the texts too: pass one text per query vector")
        lexical = self._lexical.transform(list(texts)) * (self.lexical_weight or 0.0)
        return sparse.hstack([sparse.csr_matrix(queries), lexical], format="csr", dtype=np.float32)

    def _sample_weight(self, n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        """1 per sample, but the shipped out-of-scope messages weigh at most ``GENERIC_OOS_RATIO`` x the examples.

        220 generic messages against a 3 x 4 knowledge base made the out-of-scope class swallow
        every paraphrase; from ~90 example questions up (the prior's smallest knowledge bases,
        20 x 5) nothing changes, so the shipped prior keeps the conditions it was learned under.
        """
        weights = np.ones(n, dtype=np.float64)
        generic = self.oos_generic
        if generic is None or self.oos_vectors is None or not generic.any():
            return weights
        scale = min(1.0, GENERIC_OOS_RATIO * len(self.vectors) / int(generic.sum()))
        weights[len(self.vectors) :][generic] = scale
        return weights

    def _fit_head(self) -> None:
        from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

        vectors, labels = self.vectors, self.article_ids
        texts = list(self.texts) if self.texts is not None else None
        if self.oos_vectors is not None and len(self.oos_vectors):
            vectors = np.vstack([vectors, self.oos_vectors])
            labels = np.concatenate([labels, np.full(len(self.oos_vectors), OUT_OF_SCOPE, dtype=np.int64)])
            if texts is not None:
                if self.oos_texts is None or len(self.oos_texts) != len(self.oos_vectors):
                    texts = None  # the known out-of-scope messages came without texts: vectors only
                else:
                    texts += list(self.oos_texts)
        if len(np.unique(labels)) < 2:
            return  # one article and nothing else: the similarity is all there is to go on
        if texts is not None:
            if len(texts) != len(vectors):
                raise ValueError("texts must match the vectors one to one")
            self._fit_lexical(texts)
        head = LogisticRegression(C=self.head_c, max_iter=1000)
        head.fit(self.features(vectors, texts), labels, sample_weight=self._sample_weight(len(vectors)))
        self._head = head
        # Map head classes to article positions (the out-of-scope class has none).
        classes = np.asarray(head.classes_, dtype=np.int64)
        self._head_columns = np.array(
            [int(np.flatnonzero(classes == article)[0]) for article in self.articles], dtype=np.int64
        )

    def __len__(self) -> int:
        return len(self.vectors)

    def encode(self, texts: Sequence[str]) -> Vectors:
        return self.reweight(self.encoder.encode(texts))

    def similarities(self, queries: Vectors) -> np.ndarray[Any, np.dtype[np.float32]]:
        """(n_queries, n_articles): mean of each article's top-k example cosines."""
        cosines = queries @ self.vectors.T
        out = np.empty((len(queries), len(self.articles)), dtype=np.float32)
        for position, members in enumerate(self._members):
            block = cosines[:, members]
            k = min(self.top_k, block.shape[1])
            if k == block.shape[1]:
                out[:, position] = block.mean(axis=1)
            else:
                out[:, position] = np.partition(block, -k, axis=1)[:, -k:].mean(axis=1)
        return out

    def _similarity_of(self, query: np.ndarray[Any, Any], position: int) -> float:
        members = self._members[position]
        cosines = self.vectors[members] @ query
        k = min(self.top_k, len(cosines))
        return float(np.partition(cosines, len(cosines) - k)[-k:].mean())

    def confidences(
        self, queries: Vectors, texts: Sequence[str] | None = None
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(confidence, similarity), each (n_queries, n_articles); ``texts`` as for :meth:`features`.

        With a head, the similarity is computed only for the ``shortlist`` articles the head finds
        most probable (0 for the rest): an article's confidence is at most its probability, so the
        others cannot come first, and scanning every example would cost more than the head.
        """
        if self._head is None:
            similarity = self.similarities(queries)
            return similarity, similarity
        probabilities = self._head.predict_proba(self.features(queries, texts))[:, self._head_columns]
        similarity = np.zeros_like(probabilities, dtype=np.float32)
        shortlist = min(self.shortlist, probabilities.shape[1])
        best = np.argpartition(-probabilities, shortlist - 1, axis=1)[:, :shortlist]
        for row, positions in enumerate(best):
            for position in positions:
                similarity[row, position] = self._similarity_of(queries[row], int(position))
        # The head says which article; the similarity says how close the message comes to any of
        # its examples. Their product separated out-of-scope messages best on CLINC150's val split
        # (AUROC 0.986 against 0.983 for the probability alone; see bench/bot.py).
        return probabilities * np.clip(similarity, 0.0, None), similarity

    def rank_vectors(
        self,
        queries: Vectors,
        *,
        texts: Sequence[str] | None = None,
        allowed: Collection[int] | None = None,
        language: str = "",
        languages: Sequence[str] | None = None,
        limit: int = 5,
    ) -> list[Ranking]:
        """Rankings for encoded queries; ``texts`` (one per query) are needed when :attr:`lexical`.

        The queries are in ``language``, or each in its own (``languages``, as held-out example
        questions of a mixed knowledge base are): it weighs the encoder's parts (:meth:`for_languages`).
        """
        queries = self.for_languages(queries, list(languages) if languages is not None else [language] * len(queries))
        confidence, similarity = self.confidences(queries, texts)
        mask = None
        if allowed is not None:
            mask = np.isin(self.articles, np.fromiter(allowed, dtype=np.int64))
        rankings = []
        for row in range(len(queries)):
            scores = confidence[row] if mask is None else np.where(mask, confidence[row], -np.inf)
            order = np.argsort(-scores, kind="stable")[:limit]
            rankings.append(
                Ranking(
                    tuple(
                        Candidate(int(self.articles[i]), float(confidence[row, i]), float(similarity[row, i]))
                        for i in order
                        if np.isfinite(scores[i])
                    ),
                    language,
                )
            )
        return rankings

    def rank(self, text: str, *, allowed: Collection[int] | None = None, language: str = "") -> Ranking:
        if not len(self.vectors):
            return Ranking((), language)
        return self.rank_vectors(self.encode([text]), texts=[text], allowed=allowed, language=language)[0]


def decide_cheap(ranking: Ranking, point: OperatingPoint, cut: CascadePoint) -> Verdict | None:
    """The cheap stage's verdict when it is sure the full model would agree, else None (ask the full model)."""
    top = ranking.top
    if top is None:
        return None
    if top.confidence < cut.handoff_below:
        return Verdict(
            Action.HANDOFF, ranking, OperatingPoint(cut.handoff_below, point.margin), "not_confident", Stage.CHEAP
        )
    if top.confidence >= cut.answer_above and (ranking.runner_up is None or ranking.gap >= point.margin):
        return Verdict(Action.ANSWER, ranking, OperatingPoint(cut.answer_above, point.margin), "confident", Stage.CHEAP)
    return None


def cheap_stage(full: KnowledgeIndex) -> KnowledgeIndex | None:
    """The index of a cascade's cheap stage: the full encoder's first part, with its own head.

    Its example vectors are sliced out of the full ones (nothing is encoded or cached twice).
    None when the full encoder has a single part, or its head reads n-grams too.
    """
    encoder = full.encoder
    if not isinstance(encoder, ConcatEncoder) or len(encoder.parts) < 2 or full.lexical_weight:
        return None
    return KnowledgeIndex(
        encoder=encoder.parts[0],
        vectors=encoder.first_part_of(full.vectors),
        article_ids=full.article_ids,
        oos_vectors=encoder.first_part_of(full.oos_vectors) if full.oos_vectors is not None else None,
        oos_generic=full.oos_generic,
        top_k=full.top_k,
        shortlist=full.shortlist,
        use_head=full.use_head,
        head_c=full.head_c,
    )


@dataclass(frozen=True)
class Cascade:
    """The full index and, when there is one, its cheap stage (:func:`cheap_stage`)."""

    full: KnowledgeIndex
    cheap: KnowledgeIndex | None = None

    @classmethod
    def of(cls, full: KnowledgeIndex, *, enabled: bool = True) -> Cascade:
        return cls(full, cheap_stage(full) if enabled else None)

    def triage(
        self,
        text: str,
        *,
        point: OperatingPoint,
        cut: CascadePoint | None = None,
        allowed: Collection[int] | None = None,
        language: str = "",
    ) -> Verdict:
        """Decide on ``text``: by the cheap stage alone when ``cut`` lets it, else by the full model.

        The full model then encodes only the parts the cheap stage has not already encoded.
        """
        full, cheap, encoder = self.full, self.cheap, self.full.encoder
        if cheap is None or cut is None or not len(full.vectors) or not isinstance(encoder, ConcatEncoder):
            return decide(full.rank(text, allowed=allowed, language=language), point)
        first = cheap.encoder.encode([text])
        ranking = cheap.rank_vectors(cheap.reweight(first), texts=[text], allowed=allowed, language=language)[0]
        verdict = decide_cheap(ranking, point, cut)
        if verdict is not None:
            return verdict
        whole = encoder.combine([first, *(part.encode([text]) for part in encoder.parts[1:])])
        return decide(
            full.rank_vectors(full.reweight(whole), texts=[text], allowed=allowed, language=language)[0], point
        )
