"""The knowledge base in the database: vector cache, per-process index, calibration, the `bot` command."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import pytest
from django.core.management import call_command

from bot import knowledge
from bot.encoders import ConcatEncoder, TfidfEncoder, Vectors
from bot.engine import Action
from bot.models import Article, Calibration, EncodedText, ExampleQuestion, KnownOutOfScope
from bot.prior import generic_out_of_scope

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tfidf_bot")]

ARTICLES = {
    "Refunds": (
        [
            "how do i get a refund",
            "i want my money back",
            "can i return this and get refunded",
            "refund my order please",
            "how long does a refund take",
            "where is my refund",
        ],
        ["как вернуть деньги", "хочу вернуть деньги за заказ", "верните мне деньги", "сколько идёт возврат денег"],
    ),
    "Delivery": (
        [
            "where is my parcel",
            "when will my order be delivered",
            "track my delivery",
            "my package has not arrived yet",
            "delivery status of my order",
            "is my parcel on its way",
        ],
        ["где моя посылка", "когда доставят мой заказ", "отследить доставку", "посылка ещё не пришла"],
    ),
    "Passwords": (
        [
            "i forgot my password",
            "reset my password",
            "how do i change my password",
            "cannot log in to my account",
            "password reset link does not work",
            "new password please",
        ],
        ["я забыл пароль", "сбросить пароль", "как поменять пароль", "не могу войти в аккаунт"],
    ),
    "Opening hours": (
        [
            "what are your opening hours",
            "when are you open",
            "are you open on sunday",
            "what time do you close",
            "opening times of the shop",
            "are you open today",
        ],
        ["когда вы работаете", "часы работы магазина", "вы открыты в воскресенье", "во сколько вы закрываетесь"],
    ),
}
KNOWN_OOS = {
    "en": [
        "tell me a joke",
        "what is the weather on mars",
        "who won the football game",
        "sing me a song",
        "what is the meaning of life",
    ],
    "ru": ["расскажи анекдот", "какая погода на марсе", "кто выиграл матч", "спой песню", "в чём смысл жизни"],
}


class CountingEncoder:
    """The TF-IDF encoder, counting the texts it is asked to encode."""

    def __init__(self) -> None:
        self.inner = TfidfEncoder()
        self.name, self.dim, self.idf_weighting = self.inner.name, self.inner.dim, True
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.encoded += list(texts)
        return self.inner.encode(texts)


@pytest.fixture
def kb() -> dict[str, Article]:
    articles = {}
    for title, (english, russian) in ARTICLES.items():
        article = articles[title] = Article.objects.create(title=title, answer=f"All about {title.lower()}.")
        ExampleQuestion.objects.bulk_create(
            [ExampleQuestion(article=article, text=t, language="en") for t in english]
            + [ExampleQuestion(article=article, text=t, language="ru") for t in russian]
        )
    for language, texts in KNOWN_OOS.items():
        KnownOutOfScope.objects.bulk_create([KnownOutOfScope(text=t, language=language) for t in texts])
    return articles


def test_only_new_or_changed_texts_are_embedded(kb: dict[str, Article]) -> None:
    encoder = CountingEncoder()
    knowledge.build_index(encoder=encoder)
    first = len(encoder.encoded)

    knowledge.build_index(encoder=encoder)
    unchanged = len(encoder.encoded) - first
    example = ExampleQuestion.objects.filter(language="en").first()
    assert example is not None
    example.text = "i would like a refund for my broken kettle"
    example.save(update_fields=["text", "updated_at"])
    knowledge.build_index(encoder=encoder)

    texts = {
        *ExampleQuestion.objects.values_list("text", flat=True),
        *KnownOutOfScope.objects.values_list("text", flat=True),
    }
    texts |= {text for text, _ in generic_out_of_scope()}  # the shipped ones join the team's (bot.prior)
    assert first == len(texts)
    assert unchanged == 0
    assert encoder.encoded[first:] == ["i would like a refund for my broken kettle"]
    assert EncodedText.objects.filter(encoder=encoder.name).count() == first + 1


def test_the_index_is_rebuilt_when_the_knowledge_base_changes(kb: dict[str, Article]) -> None:
    before = knowledge.current_snapshot()
    assert knowledge.current_snapshot() is before

    ExampleQuestion.objects.create(article=kb["Refunds"], text="refund for a damaged item")

    assert knowledge.current_snapshot() is not before


def test_calibrate_stores_an_operating_point_per_language_and_a_pooled_one(kb: dict[str, Article]) -> None:
    out = io.StringIO()
    call_command("bot", "calibrate", "--encoder", "tfidf", "--min-in-scope", "10", "--min-oos", "3", stdout=out)

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    records = {c.language: c for c in Calibration.objects.filter(encoder=TfidfEncoder().name)}
    assert set(records) == {"en", "ru", "*"}
    assert {line["language"] for line in lines} == {"en", "ru", "*"}
    assert records["en"].stats["n_in_scope"] == 24
    assert records["ru"].stats["n_in_scope"] == 16
    assert records["ru"].stats["n_out_of_scope"] == 5
    for record in records.values():
        assert record.margin >= 0
        assert 0 <= record.stats["outcome"]["oos_handed_off"] <= 1


def test_without_a_calibration_the_bot_hands_off(kb: dict[str, Article]) -> None:
    verdict = knowledge.triage_text(text="how do i reset my password")

    assert verdict.action is Action.HANDOFF
    assert verdict.reason == "not_calibrated"


def _calibrate_by_hand(language: str, threshold: float) -> None:
    from django.utils import timezone

    Calibration.objects.create(
        encoder=TfidfEncoder().name, language=language, threshold=threshold, margin=0.0, computed_at=timezone.now()
    )


def test_the_bot_answers_from_the_article_the_channel_may_use(kb: dict[str, Article]) -> None:
    _calibrate_by_hand("*", 0.2)
    kb["Passwords"].channels = [42]
    kb["Passwords"].save(update_fields=["channels", "updated_at"])

    on_42 = knowledge.triage_text(text="i forgot my password", channel_id=42)
    elsewhere = knowledge.triage_text(text="i forgot my password", channel_id=7)

    assert on_42.action is Action.ANSWER
    assert on_42.article_ids == [kb["Passwords"].pk]
    assert kb["Passwords"].pk not in {c.article_id for c in elsewhere.ranking.candidates}


def test_each_language_is_held_to_its_own_threshold(kb: dict[str, Article]) -> None:
    _calibrate_by_hand("*", 0.2)
    _calibrate_by_hand("ru", 0.999)

    english = knowledge.triage_text(text="i forgot my password")
    russian = knowledge.triage_text(text="я забыл пароль")

    assert english.action is Action.ANSWER
    assert russian.ranking.language == "ru"
    assert russian.action is Action.HANDOFF
    assert russian.point.threshold == pytest.approx(0.999)


def test_a_latin_script_language_of_the_knowledge_base_is_held_to_its_own_threshold(
    kb: dict[str, Article],
) -> None:
    ExampleQuestion.objects.bulk_create(
        [
            ExampleQuestion(article=kb["Passwords"], text=text, language="es")
            for text in ["olvidé mi contraseña", "cómo cambio mi contraseña", "restablecer la contraseña"]
        ]
    )
    _calibrate_by_hand("*", 0.2)
    _calibrate_by_hand("es", 0.999)

    english = knowledge.triage_text(text="i forgot my password")
    spanish = knowledge.triage_text(text="olvidé mi contraseña, no puedo entrar")

    assert english.ranking.language == "en"
    assert english.action is Action.ANSWER
    assert spanish.ranking.language == "es"
    assert spanish.action is Action.HANDOFF
    assert spanish.point.threshold == pytest.approx(0.999)


def test_bot_ask_prints_the_decision_and_its_scores(kb: dict[str, Article]) -> None:
    _calibrate_by_hand("*", 0.2)
    out = io.StringIO()

    call_command("bot", "ask", "where is my parcel", stdout=out)

    decision = json.loads(out.getvalue())
    assert decision["action"] == "answer"
    assert decision["candidates"][0]["article_id"] == kb["Delivery"].pk


def test_a_calibration_that_met_no_target_hands_off(kb: dict[str, Article]) -> None:
    from django.utils import timezone

    Calibration.objects.create(
        encoder=TfidfEncoder().name,
        language="*",
        threshold=0.0,
        margin=0.0,
        computed_at=timezone.now(),
        stats={"feasible": False},
    )

    verdict = knowledge.triage_text(text="i forgot my password")

    assert (verdict.action, verdict.reason) == (Action.HANDOFF, "calibration_infeasible")


def test_calibrating_an_empty_knowledge_base_makes_the_bot_hand_off() -> None:
    call_command("bot", "calibrate", "--encoder", "tfidf", stdout=io.StringIO())

    [record] = Calibration.objects.all()
    assert record.stats["feasible"] is False
    assert record.threshold > 1


class WordBlindEncoder:
    """A dense encoder that sees only a text's length, and asks the head to read the words (like USE)."""

    name, dim, idf_weighting, lexical_weight = "word-blind-test", 2, False, 1.0

    def encode(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        vectors = np.array([[1.0, len(t) / 50] for t in texts], dtype=np.float32).reshape(-1, self.dim)
        normalised: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return normalised


def test_the_knowledge_bases_words_reach_the_head_when_the_encoder_asks(kb: dict[str, Article]) -> None:
    encoder = WordBlindEncoder()

    index = knowledge.build_index(encoder=encoder)
    records = knowledge.calibrate(encoder=encoder, min_in_scope=10, min_out_of_scope=3)
    verdict = knowledge.triage_text(text="я забыл пароль от аккаунта", encoder=encoder)

    assert index.lexical
    assert {record.language for record in records} >= {"*"}
    assert verdict.ranking.top is not None
    assert verdict.ranking.top.article_id == kb["Passwords"].pk


class _EnglishOnlyTfidf(TfidfEncoder):
    """A part trained on English alone (as multilingual USE never saw Ukrainian), told apart by its name."""

    languages = frozenset({"en"})

    def __init__(self) -> None:
        super().__init__(dim=256)
        self.name = "english-only-tfidf-test"


def test_the_product_index_weighs_each_example_question_by_its_language() -> None:
    encoder = ConcatEncoder([_EnglishOnlyTfidf(), TfidfEncoder(dim=512)])
    article = Article.objects.create(title="Delivery", answer="2-3 days.")
    ExampleQuestion.objects.create(article=article, text="where is my parcel", language="en")
    ExampleQuestion.objects.create(article=article, text="де моя посилка", language="uk")

    index = knowledge.build_index(encoder=encoder)
    plain = knowledge.embed(encoder=encoder, texts=["where is my parcel", "де моя посилка"])

    assert (index.vectors[0] == plain[0]).all(), "English: every part knows it"
    assert not (index.vectors[1] == plain[1]).all(), "Ukrainian: the English-only part weighs a third"
    assert index.vectors[1] == pytest.approx(encoder.for_languages(plain[1:], ["uk"])[0])
