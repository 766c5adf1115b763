"""The answering engine on a tiny knowledge base, with the no-model TF-IDF encoder (no database)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bot import encoders
from bot.calibration import ALL_LANGUAGES, Sample, Targets, choose_point, evaluate, pick_point
from bot.encoders import TfidfEncoder, load_encoder
from bot.engine import Action, KnowledgeIndex, OperatingPoint, decide
from bot.language import detect_language

REFUND, DELIVERY, PASSWORD, HOURS = 1, 2, 3, 4
KB = {
    REFUND: [
        "how do i get a refund",
        "i want my money back",
        "can i return this and get refunded",
        "refund my order please",
        "how long does a refund take",
    ],
    DELIVERY: [
        "where is my parcel",
        "when will my order be delivered",
        "track my delivery",
        "my package has not arrived yet",
        "delivery status of my order",
    ],
    PASSWORD: [
        "i forgot my password",
        "reset my password",
        "how do i change my password",
        "cannot log in to my account",
        "password reset link does not work",
    ],
    HOURS: [
        "what are your opening hours",
        "when are you open",
        "are you open on sunday",
        "what time do you close",
        "opening times of the shop",
    ],
}
OUT_OF_SCOPE = ["tell me a joke", "what is the weather like on mars", "who won the football game"]


@pytest.fixture(scope="module")
def index() -> KnowledgeIndex:
    encoder = TfidfEncoder()
    texts = [text for examples in KB.values() for text in examples]
    ids = np.array([article for article, examples in KB.items() for _ in examples])
    return KnowledgeIndex(encoder=encoder, vectors=encoder.encode(texts), article_ids=ids)


POINT = OperatingPoint(threshold=0.5, margin=0.1)


def test_a_clear_question_is_answered_with_its_article(index: KnowledgeIndex) -> None:
    verdict = decide(index.rank("how can i reset my password"), POINT)

    assert verdict.action is Action.ANSWER
    assert verdict.article_ids == [PASSWORD]
    assert verdict.ranking.runner_up is not None
    assert verdict.ranking.top is not None
    assert verdict.ranking.top.confidence > verdict.ranking.runner_up.confidence


def test_two_close_articles_make_the_bot_ask_which_one(index: KnowledgeIndex) -> None:
    # Both the refund and the delivery article speak of "my order"; ask when they are close.
    ranking = index.rank("refund or delivery of my order")
    wide_margin = OperatingPoint(threshold=0.0, margin=ranking.gap + 0.01)

    verdict = decide(ranking, wide_margin)

    assert verdict.action is Action.CLARIFY
    assert set(verdict.article_ids) == {REFUND, DELIVERY}


def test_below_the_threshold_the_bot_hands_off(index: KnowledgeIndex) -> None:
    ranking = index.rank("tell me a joke about penguins")
    verdict = decide(ranking, OperatingPoint(threshold=ranking.confidence + 0.01, margin=0.0))

    assert verdict.action is Action.HANDOFF
    assert verdict.reason == "not_confident"
    assert verdict.as_log()["candidates"], "a hand-off keeps the scores it was decided on"


def test_an_empty_knowledge_base_hands_off() -> None:
    encoder = TfidfEncoder()
    empty = KnowledgeIndex(encoder=encoder, vectors=encoder.encode([]), article_ids=np.array([], dtype=np.int64))

    assert decide(empty.rank("anything"), POINT).action is Action.HANDOFF


def test_a_channel_only_sees_the_articles_it_may_use(index: KnowledgeIndex) -> None:
    ranking = index.rank("how can i reset my password", allowed=[REFUND, HOURS])

    assert {c.article_id for c in ranking.candidates} <= {REFUND, HOURS}


def test_known_out_of_scope_messages_lower_the_confidence_of_look_alikes() -> None:
    encoder = TfidfEncoder()
    texts = [text for examples in KB.values() for text in examples]
    ids = np.array([article for article, examples in KB.items() for _ in examples])
    plain = KnowledgeIndex(encoder=encoder, vectors=encoder.encode(texts), article_ids=ids)
    with_oos = KnowledgeIndex(
        encoder=encoder, vectors=encoder.encode(texts), article_ids=ids, oos_vectors=encoder.encode(OUT_OF_SCOPE)
    )

    assert with_oos.rank("tell me a joke").confidence < plain.rank("tell me a joke").confidence


class _BlurryEncoder:
    """A dense encoder that sees only how long a text is: meaning-blind, like a model on an unknown word."""

    name = "blurry-test"
    dim = 4
    idf_weighting = False

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.array([[1.0, len(t) / 100, 0.5, 0.25] for t in texts], dtype=np.float32).reshape(-1, self.dim)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _blurry_index(*, with_texts: bool) -> KnowledgeIndex:
    encoder = _BlurryEncoder()
    texts = [text for examples in KB.values() for text in examples]
    ids = np.array([article for article, examples in KB.items() for _ in examples])
    return KnowledgeIndex(
        encoder=encoder,
        vectors=encoder.encode(texts),
        article_ids=ids,
        texts=texts if with_texts else None,
        lexical_weight=1.0,
    )


def test_the_head_reads_the_knowledge_bases_own_words_when_given_the_texts() -> None:
    lexical, vectors_only = _blurry_index(with_texts=True), _blurry_index(with_texts=False)
    questions = {"password reset please": PASSWORD, "refund for my order": REFUND, "opening hours on sunday": HOURS}

    assert lexical.lexical
    assert not vectors_only.lexical
    assert all(lexical.rank(text).candidates[0].article_id == article for text, article in questions.items())
    assert not all(vectors_only.rank(text).candidates[0].article_id == article for text, article in questions.items())


def test_a_lexical_head_needs_each_querys_text() -> None:
    index = _blurry_index(with_texts=True)
    vectors = index.encode(["reset my password"])

    with pytest.raises(ValueError, match="texts"):
        index.rank_vectors(vectors)
    assert index.rank_vectors(vectors, texts=["reset my password"])[0].candidates[0].article_id == PASSWORD


def test_the_head_reads_ngrams_only_for_an_encoder_that_asks_for_them() -> None:
    texts = [text for examples in KB.values() for text in examples]
    ids = np.array([article for article, examples in KB.items() for _ in examples])
    plain, with_ngrams = _BlurryEncoder(), encoders.WithNgrams(_BlurryEncoder())

    chosen = KnowledgeIndex(encoder=with_ngrams, vectors=with_ngrams.encode(texts), article_ids=ids, texts=texts)
    default = KnowledgeIndex(encoder=plain, vectors=plain.encode(texts), article_ids=ids, texts=texts)

    assert with_ngrams.name == "blurry-test+ngrams", "calibrations with and without n-grams must not mix"
    assert chosen.lexical
    assert chosen.rank("password reset please").candidates[0].article_id == PASSWORD
    assert not default.lexical


def test_the_ngrams_spec_wraps_the_encoder() -> None:
    encoder = encoders.build_encoder("tfidf+ngrams")

    assert isinstance(encoder, encoders.WithNgrams)
    assert encoder.name == encoders.TfidfEncoder().name + "+ngrams"
    with pytest.raises(ValueError, match="unknown encoder"):
        encoders.build_encoder("ngrams")


def test_the_tfidf_fallback_adds_no_second_set_of_ngrams() -> None:
    encoder = TfidfEncoder()
    texts = [text for examples in KB.values() for text in examples]
    ids = np.array([article for article, examples in KB.items() for _ in examples])

    index = KnowledgeIndex(encoder=encoder, vectors=encoder.encode(texts), article_ids=ids, texts=texts)

    assert not index.lexical
    assert index.rank_vectors(index.encode(["reset my password"]))[0].candidates[0].article_id == PASSWORD


def test_choose_point_meets_the_targets_and_prefers_more_right_answers() -> None:
    rng = np.random.default_rng(1)
    right = [Sample(float(c), 0.0, True, True) for c in rng.uniform(0.6, 1.0, 200)]
    wrong = [Sample(float(c), 0.0, False, True) for c in rng.uniform(0.0, 0.55, 50)]
    oos = [Sample(float(c), 0.0, False, False) for c in rng.uniform(0.0, 0.5, 60)]

    result = choose_point([*right, *wrong, *oos], Targets(precision=0.97, oos_handed_off=0.95, z=0))

    assert result.feasible
    assert 0.55 < result.point.threshold <= min(s.confidence for s in right)
    assert result.outcome.in_scope_answered_right == pytest.approx(200 / 250)
    assert result.outcome.oos_handed_off == 1.0


def test_few_out_of_scope_samples_are_not_taken_at_face_value() -> None:
    right = [Sample(0.9, 0.0, True, True)] * 500
    oos = [Sample(0.1, 0.0, False, False)] * 10  # all handed off, but only ten of them

    raw = choose_point([*right, *oos], Targets(z=0))
    bounded = choose_point([*right, *oos], Targets(z=1.645))

    assert raw.feasible
    assert not bounded.feasible, "10 of 10 handed off does not show a 95 % hand-off rate"


def test_choose_point_hands_off_everything_when_nothing_meets_the_targets() -> None:
    mixed = [Sample(0.9, 0.0, False, True), Sample(0.9, 0.0, False, False), Sample(0.8, 0.0, True, True)]

    result = choose_point(mixed, Targets(precision=0.99, oos_handed_off=0.99))

    assert not result.feasible
    assert evaluate(mixed, result.point).answered_share == 0.0


def test_a_language_without_its_own_calibration_uses_the_pooled_one() -> None:
    english, pooled = OperatingPoint(0.5, 0.1), OperatingPoint(0.3, 0.05)
    points = {"en": english, ALL_LANGUAGES: pooled}

    assert pick_point(points, "en") == english
    assert pick_point(points, "fa") == pooled
    assert pick_point({}, "en") is None


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("where is my parcel", "en"),
        ("где моя посылка", "ru"),
        ("де моя посилка, її досі немає", "uk"),
        ("чи можу я отримати кредит", "uk"),
        ("могу ли я получить кредит", "ru"),
        ("بسته من کجاست", "fa"),
        ("1234", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    ("text", "known", "language"),
    [
        ("¿Dónde está mi pedido?", {"en", "es"}, "es"),
        ("olvidé mi contraseña", {"en", "es"}, "es"),
        ("i forgot my password", {"en", "es"}, "en"),
        ("¿Dónde está mi pedido?", {"en"}, "en"),  # one candidate: nothing to tell apart
        ("Onde está o meu pedido? Quero falar com alguém", {"en", "es", "pt-br"}, "pt-br"),  # the base's own code
        ("Wo ist meine Bestellung?", {"en", "de", "fr"}, "de"),
        ("hola", {"en", "es"}, "en"),  # too short to be sure: the default
        ("где моя посылка", {"en", "es"}, "ru"),  # the script decides
        ("بسته من کجاست", {"en", "es"}, "fa"),
    ],
)
def test_latin_script_messages_are_told_among_the_knowledge_bases_languages(
    text: str, known: set[str], language: str
) -> None:
    assert detect_language(text, known=known) == language


def test_the_fallback_takes_over_with_a_warning_when_the_model_cannot_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> encoders.Encoder:
        raise OSError("model file is missing")

    monkeypatch.setitem(encoders.FACTORIES, "use", broken)
    with caplog.at_level(logging.WARNING, logger="bot.encoders"):
        encoder = load_encoder("use")

    assert isinstance(encoder, TfidfEncoder)
    assert "falling back to TF-IDF" in caplog.text


def test_an_unknown_encoder_name_is_an_error_not_a_silent_fallback() -> None:
    with pytest.raises(ValueError, match="unknown encoder"):
        load_encoder("word2vec")


def test_the_encoder_is_loaded_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []

    def counting() -> encoders.Encoder:
        built.append(1)
        return TfidfEncoder()

    monkeypatch.setitem(encoders.FACTORIES, "tfidf", counting)
    encoders.reset_encoders()
    try:
        first, second = encoders.get_encoder("tfidf"), encoders.get_encoder("tfidf")
    finally:
        encoders.reset_encoders()

    assert first is second
    assert built == [1]


class _EnglishOnlyEncoder(_BlurryEncoder):
    """A part trained on English alone, as multilingual USE was never trained on Ukrainian."""

    name = "english-only-test"
    languages = frozenset({"en"})


def test_a_part_never_trained_on_a_language_weighs_a_third_in_it() -> None:
    encoder = encoders.ConcatEncoder([_EnglishOnlyEncoder(), TfidfEncoder(dim=64)])
    whole = encoder.encode(["where is my parcel", "де моя посилка"])

    weighed = encoder.for_languages(whole, ["en", "uk"])

    assert encoder.part_weights("en") is None
    assert encoder.part_weights("") is None
    assert encoder.part_weights("uk") == (encoders.UNTRAINED_PART_WEIGHT, 1.0)
    assert np.allclose(weighed[0], whole[0]), "a language every part knows is left as it is"
    assert not np.allclose(weighed[1], whole[1])
    assert np.allclose(np.linalg.norm(weighed, axis=1), 1.0)
    assert np.allclose(encoder.first_part_of(weighed), encoder.first_part_of(whole)), "the cascade's part is intact"


def test_the_index_weighs_examples_and_queries_of_an_untrained_language_by_the_parts_that_know_it() -> None:
    first, second = _EnglishOnlyEncoder(), TfidfEncoder(dim=256)
    encoder = encoders.ConcatEncoder([first, second])
    texts = ["де моя посилка", "коли приїде замовлення", "скинути пароль", "забув пароль"]
    ids = np.array([DELIVERY, DELIVERY, PASSWORD, PASSWORD])
    query = "де посилка"
    index = KnowledgeIndex(
        encoder=encoder, vectors=encoder.encode(texts), article_ids=ids, languages=["uk"] * 4, top_k=1, use_head=False
    )

    ranking = index.rank_vectors(encoder.encode([query]), language="uk")

    w = encoders.UNTRAINED_PART_WEIGHT
    cosines = [float(p.encode([query])[0] @ p.encode([texts[0]])[0]) for p in (first, second)]
    expected = (w * w * cosines[0] + cosines[1]) / (w * w + 1)
    top = ranking[0].candidates[0]
    assert top.article_id == DELIVERY
    assert top.similarity == pytest.approx(expected, abs=1e-5)
    unweighed = index.rank_vectors(encoder.encode([query]), language="en")[0].candidates[0]
    assert unweighed.similarity != pytest.approx(expected, abs=1e-3), "a query in English is not re-weighed"
