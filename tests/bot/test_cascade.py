"""The cascade: a cheap first stage decides alone only where calibration shows the full model agrees."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from django.utils import timezone

from bot import encoders, knowledge
from bot.calibration import Sample, Targets, choose_cascade, evaluate_cascade
from bot.encoders import ConcatEncoder, TfidfEncoder, Vectors
from bot.engine import Action, Cascade, CascadePoint, KnowledgeIndex, OperatingPoint, Stage, cheap_stage
from bot.models import Article, Calibration, ExampleQuestion, KnownOutOfScope

ARTICLES = {
    1: ["where is my parcel", "track my delivery", "my package has not arrived", "when will my order come"],
    2: ["i forgot my password", "reset my password", "cannot log in to my account", "change my password"],
    3: ["how do i get a refund", "i want my money back", "refund my order please", "where is my refund"],
}
KNOWN_OOS = ["tell me a joke", "what is the weather on mars", "who won the football game", "sing me a song"]


class CountingEncoder:
    """A TF-IDF encoder that counts the texts it encodes: the "expensive" part of the test cascade."""

    def __init__(self) -> None:
        self.inner = TfidfEncoder(dim=2048)
        self.name, self.dim, self.idf_weighting = "counting-" + self.inner.name, self.inner.dim, False
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.encoded += list(texts)
        return self.inner.encode(texts)


def two_stage() -> tuple[ConcatEncoder, CountingEncoder]:
    expensive = CountingEncoder()
    return ConcatEncoder([TfidfEncoder(dim=1024), expensive]), expensive


def cascade_over(encoder: ConcatEncoder) -> Cascade:
    texts = [text for examples in ARTICLES.values() for text in examples]
    ids = np.array([article for article, examples in ARTICLES.items() for _ in examples])
    index = KnowledgeIndex(encoder=encoder, vectors=encoder.encode(texts), article_ids=ids)
    return Cascade.of(index)


POINT = OperatingPoint(threshold=0.2, margin=0.0)


def test_the_cheap_stage_answers_alone_when_it_is_confident() -> None:
    encoder, expensive = two_stage()
    cascade = cascade_over(encoder)
    expensive.encoded.clear()

    verdict = cascade.triage("i forgot my password", point=POINT, cut=CascadePoint(answer_above=0.0, handoff_below=0.0))

    assert verdict.stage is Stage.CHEAP
    assert verdict.action is Action.ANSWER
    assert verdict.article_ids == [2]
    assert verdict.as_log()["stage"] == "cheap"
    assert expensive.encoded == [], "the full model's other encoder was not run"


def test_the_cheap_stage_hands_off_alone_far_below_its_cut_off() -> None:
    encoder, expensive = two_stage()
    cascade = cascade_over(encoder)
    expensive.encoded.clear()

    verdict = cascade.triage("sing me a song", point=POINT, cut=CascadePoint(answer_above=math.inf, handoff_below=2.0))

    assert (verdict.stage, verdict.action, verdict.reason) == (Stage.CHEAP, Action.HANDOFF, "not_confident")
    assert expensive.encoded == []


def test_between_the_cut_offs_the_full_model_decides() -> None:
    encoder, expensive = two_stage()
    cascade = cascade_over(encoder)
    expensive.encoded.clear()

    verdict = cascade.triage(
        "i forgot my password", point=POINT, cut=CascadePoint(answer_above=math.inf, handoff_below=0.0)
    )

    assert verdict.stage is Stage.FULL
    assert expensive.encoded == ["i forgot my password"]
    full = cascade.full.rank("i forgot my password")
    assert verdict.ranking.top == full.top, "the full stage ranks exactly as the full model alone"


def test_without_cut_offs_the_full_model_decides() -> None:
    encoder, expensive = two_stage()
    cascade = cascade_over(encoder)
    expensive.encoded.clear()

    verdict = cascade.triage("i forgot my password", point=POINT, cut=None)

    assert verdict.stage is Stage.FULL
    assert expensive.encoded == ["i forgot my password"]


def test_the_cheap_stage_reads_its_vectors_out_of_the_full_ones() -> None:
    encoder, _ = two_stage()
    texts = ARTICLES[1]
    cheap = cheap_stage(cascade_over(encoder).full)

    assert cheap is not None
    assert cheap.encoder is encoder.parts[0]
    np.testing.assert_allclose(encoder.first_part_of(encoder.encode(texts)), encoder.parts[0].encode(texts), atol=1e-6)


def test_a_single_encoder_has_no_cheap_stage() -> None:
    encoder = TfidfEncoder()
    index = KnowledgeIndex(
        encoder=encoder, vectors=encoder.encode(ARTICLES[1] + ARTICLES[2]), article_ids=[1] * 4 + [2] * 4
    )
    assert Cascade.of(index).cheap is None
    assert Cascade.of(cascade_over(two_stage()[0]).full, enabled=False).cheap is None


def paired(n: int, *, cheap_wrong_above: float | None = None) -> tuple[list[Sample], list[Sample]]:
    """n in-scope and n//4 out-of-scope messages: the full model answers in-scope right at 0.9, hands off the rest."""
    rng = np.random.default_rng(0)
    cheap, full = [], []
    for i in range(n):
        confidence = float(rng.uniform(0.5, 1.0))
        wrong = cheap_wrong_above is not None and confidence >= cheap_wrong_above
        full.append(Sample(0.9, 0.05, correct=True, in_scope=True, article_id=1 + i % 5))
        cheap.append(Sample(confidence, 0.05, correct=not wrong, in_scope=True, article_id=99 if wrong else 1 + i % 5))
    for _ in range(n // 4):
        full.append(Sample(0.1, 0.05, correct=False, in_scope=False, article_id=1))
        cheap.append(Sample(float(rng.uniform(0.0, 0.3)), 0.01, correct=False, in_scope=False, article_id=1))
    return cheap, full


def test_calibration_lets_the_cheap_stage_decide_where_it_agrees_with_the_full_model() -> None:
    cheap, full = paired(2000)
    point = OperatingPoint(threshold=0.5, margin=0.0)

    found = choose_cascade(cheap, full, point, Targets())

    assert found is not None
    # It agrees on every in-scope message: it answers from below their lowest confidence (a few
    # out-of-scope ones at the top of theirs fit under the 1 % bound) and hands off below that.
    assert found.cut.answer_above <= 0.5
    assert 0 < found.cut.handoff_below <= found.cut.answer_above
    assert found.disagreement <= 0.01
    outcome, decided = evaluate_cascade(cheap, full, point, found.cut)
    assert decided == pytest.approx(1.0)
    assert outcome.in_scope_answered_right == pytest.approx(1.0)
    assert outcome.oos_handed_off >= 0.95


def test_calibration_keeps_the_cheap_stage_out_where_it_disagrees() -> None:
    cheap, full = paired(2000, cheap_wrong_above=0.0)  # the cheap stage always picks another article

    found = choose_cascade(cheap, full, OperatingPoint(threshold=0.5, margin=0.0), Targets())

    assert found is None or math.isinf(found.cut.answer_above)


def test_too_few_messages_cannot_show_agreement() -> None:
    cheap, full = paired(40)  # agrees on every one, but 40 cannot bound disagreement under 1 %

    assert choose_cascade(cheap, full, OperatingPoint(threshold=0.5, margin=0.0), Targets()) is None


@pytest.fixture
def kb(settings: object) -> Iterator[dict[int, Article]]:
    encoders.reset_encoders()
    knowledge.forget_indexes()
    articles = {}
    for key, examples in ARTICLES.items():
        article = articles[key] = Article.objects.create(title=f"Article {key}", answer=f"Answer {key}.")
        ExampleQuestion.objects.bulk_create([ExampleQuestion(article=article, text=t, language="en") for t in examples])
    KnownOutOfScope.objects.bulk_create([KnownOutOfScope(text=t, language="en") for t in KNOWN_OOS])
    yield articles
    encoders.reset_encoders()
    knowledge.forget_indexes()


def calibrate_by_hand(encoder: ConcatEncoder, cascade: dict[str, object] | None) -> None:
    Calibration.objects.create(
        encoder=encoder.name,
        language=Calibration.ALL_LANGUAGES,
        threshold=0.05,
        margin=0.0,
        computed_at=timezone.now(),
        stats={"feasible": True, "cascade": cascade},
    )


@pytest.mark.django_db
def test_the_product_lets_a_calibrated_cheap_stage_decide(kb: dict[int, Article]) -> None:
    encoder, expensive = two_stage()
    calibrate_by_hand(encoder, {"cheap_encoder": encoder.parts[0].name, "answer_above": 0.0, "handoff_below": 0.0})
    knowledge.current_snapshot(encoder=encoder)
    expensive.encoded.clear()

    verdict = knowledge.triage_text(text="i forgot my password", encoder=encoder)

    assert (verdict.stage, verdict.action, verdict.article_ids) == (Stage.CHEAP, Action.ANSWER, [kb[2].pk])
    assert expensive.encoded == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cascade",
    [None, {"cheap_encoder": "another-encoder", "answer_above": 0.0, "handoff_below": 0.0}],
    ids=["not-calibrated", "calibrated-for-another-encoder"],
)
def test_the_product_uses_the_full_model_without_cut_offs_for_its_cheap_stage(
    kb: dict[int, Article], cascade: dict[str, object] | None
) -> None:
    encoder, expensive = two_stage()
    calibrate_by_hand(encoder, cascade)
    knowledge.current_snapshot(encoder=encoder)
    expensive.encoded.clear()

    verdict = knowledge.triage_text(text="i forgot my password", encoder=encoder)

    assert verdict.stage is Stage.FULL
    assert expensive.encoded == ["i forgot my password"]


@pytest.mark.django_db
def test_the_cascade_can_be_switched_off(kb: dict[int, Article], settings: object) -> None:
    settings.BOT_CASCADE = False  # type: ignore[attr-defined]
    encoder, expensive = two_stage()
    calibrate_by_hand(encoder, {"cheap_encoder": encoder.parts[0].name, "answer_above": 0.0, "handoff_below": 0.0})

    verdict = knowledge.triage_text(text="i forgot my password", encoder=encoder)

    assert verdict.stage is Stage.FULL
    assert "i forgot my password" in expensive.encoded


@pytest.mark.django_db
def test_calibrate_stores_the_cascade_with_the_operating_point(kb: dict[int, Article]) -> None:
    encoder, _ = two_stage()

    # z=0: the raw shares, so that a knowledge base this small can show agreement at all; its own
    # point needs the team's own out-of-scope messages (bot.prior), four here.
    records = knowledge.calibrate(
        encoder=encoder,
        targets=Targets(z=0.0, precision=0.5, oos_handed_off=0.5),
        min_out_of_scope=len(KNOWN_OOS),
    )

    pooled = next(r for r in records if r.language == Calibration.ALL_LANGUAGES)
    assert pooled.stats["feasible"]
    stored = pooled.stats["cascade"]
    assert stored is not None
    assert stored["cheap_encoder"] == encoder.parts[0].name
    assert 0 <= stored["handoff_below"] <= (stored["answer_above"] if stored["answer_above"] is not None else math.inf)
    assert 0 < stored["decided_share"] <= 1


@pytest.mark.django_db
def test_a_small_knowledge_base_gets_no_cascade(kb: dict[int, Article]) -> None:
    encoder, _ = two_stage()

    records = knowledge.calibrate(encoder=encoder, targets=Targets(precision=0.5, oos_handed_off=0.5))

    assert all(record.stats["cascade"] is None for record in records)
