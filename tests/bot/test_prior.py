"""The bot from day one: the shipped prior, the shipped out-of-scope messages, and when the team's own data takes over."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from bot import knowledge
from bot.calibration import Sample, Targets
from bot.encoders import TfidfEncoder
from bot.engine import Action
from bot.models import Article, Calibration, ExampleQuestion, KnownOutOfScope
from bot.prior import PRIOR, PRIOR_FILE, TEAM, Prior, choose, generic_out_of_scope, prior_for
from tests.conftest import PASSWORD

FIXTURE = Path(__file__).parent / "fixtures" / "fewshot_20x5.json"

pytestmark = pytest.mark.usefixtures("tfidf_bot")


def samples(
    n_right: int, n_wrong: int, n_oos: int, *, confidence: float = 0.9, oos_confidence: float = 0.1
) -> list[Sample]:
    """In-scope samples (right, then wrong) at ``confidence``, out-of-scope ones at ``oos_confidence``."""
    rows = [Sample(confidence, 0.0, True, True, 1) for _ in range(n_right)]
    rows += [Sample(confidence, 0.0, False, True, 2) for _ in range(n_wrong)]
    rows += [Sample(oos_confidence, 0.0, False, False, 3) for _ in range(n_oos)]
    return rows


PRIOR_POINT = Prior("test-encoder", "*", threshold=0.5, margin=0.0)


def test_with_little_data_of_its_own_the_team_gets_the_prior() -> None:
    few = samples(20, 0, 5)  # 20 right answers cannot prove 97 % precision by a Wilson bound

    choice = choose(few, Targets(), PRIOR_POINT, min_out_of_scope=5)

    assert choice.source == PRIOR
    assert choice.result.feasible
    assert choice.result.point == PRIOR_POINT.point


def test_with_enough_data_of_its_own_the_team_replaces_the_prior() -> None:
    many = samples(600, 0, 200, confidence=0.3, oos_confidence=0.05)  # right below the prior's 0.5

    choice = choose(many, Targets(), PRIOR_POINT)

    assert choice.source == TEAM
    assert choice.result.feasible
    assert choice.result.point.threshold < PRIOR_POINT.threshold, "its own point answers what the prior would not"


def test_the_team_point_needs_out_of_scope_messages_of_its_own() -> None:
    # The same in-scope evidence, but the out-of-scope samples are all the shipped generic ones.
    data = samples(600, 0, 200, confidence=0.3, oos_confidence=0.05)
    generic = [not s.in_scope for s in data]

    choice = choose(data, Targets(), PRIOR_POINT, generic=generic)

    assert choice.source == PRIOR
    assert choice.own_out_of_scope == 0


def test_the_prior_is_not_used_without_example_questions_to_check_it_on() -> None:
    choice = choose(samples(0, 0, 50), Targets(), PRIOR_POINT)

    assert not choice.result.feasible


def test_the_prior_is_refused_where_the_team_data_shows_it_fails() -> None:
    wrong = samples(10, 30, 5)  # at the prior's point, three answers in four would be wrong

    choice = choose(wrong, Targets(), PRIOR_POINT, min_out_of_scope=5)

    assert choice.source == TEAM
    assert choice.prior_rejected
    assert not choice.result.feasible


def test_the_shipped_out_of_scope_set_is_licensed_and_multilingual() -> None:
    data = json.loads((Path(knowledge.__file__).parent / "data" / "generic_oos.json").read_text(encoding="utf-8"))
    languages = {language for _, language in generic_out_of_scope()}

    assert "CC BY 3.0" in data["licence"]
    assert "CLINC150" in data["source"]
    assert languages == {"en", "ru", "uk", "fa"}
    assert len(generic_out_of_scope()) >= 200


def test_the_prior_ships_for_the_default_and_the_fallback_encoders() -> None:
    data = json.loads(PRIOR_FILE.read_text(encoding="utf-8"))

    assert "CC BY 3.0" in data["data"]
    assert prior_for(TfidfEncoder().name, "*") is not None
    assert prior_for(TfidfEncoder().name, "xx") == prior_for(TfidfEncoder().name, "*"), "unknown languages: pooled"


@pytest.mark.django_db
def test_a_team_without_out_of_scope_messages_learns_from_the_shipped_ones(kb: dict[str, Any]) -> None:
    assert not KnownOutOfScope.objects.exists()
    index = knowledge.build_index(encoder=TfidfEncoder())
    held = knowledge.held_out_samples(encoder=TfidfEncoder())

    assert index.oos_vectors is not None
    assert len(index.oos_vectors) == len(generic_out_of_scope())
    assert held.counts["known_out_of_scope"] == len(generic_out_of_scope())
    assert sum(held.generic) == len(generic_out_of_scope())


@pytest.fixture
def fewshot() -> dict[str, Any]:
    """20 articles x 5 example questions from CLINC150 domains the prior never saw, no out-of-scope messages."""
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    for row in data["articles"]:
        article = Article.objects.create(title=row["title"], answer=f"About {row['title']}.")
        row["id"] = article.pk
        ExampleQuestion.objects.bulk_create([ExampleQuestion(article=article, text=t) for t in row["examples"]])
    return data


@pytest.mark.django_db
def test_a_new_team_with_20_articles_of_5_questions_gets_answers_on_held_out_messages(fewshot: dict[str, Any]) -> None:
    records = {r.language: r for r in knowledge.calibrate(encoder=TfidfEncoder())}

    pooled = records[Calibration.ALL_LANGUAGES]
    assert pooled.stats["source"] == PRIOR
    assert pooled.stats["feasible"]
    verdicts = [
        (knowledge.triage_text(text=text, encoder=TfidfEncoder()), row["id"])
        for row in fewshot["articles"]
        for text in row["tests"]
    ]
    answered = [(v, expected) for v, expected in verdicts if v.action is Action.ANSWER]
    right = [v for v, expected in answered if v.article_ids == [expected]]
    assert answered, "the bot answers some of them from day one"
    assert len(right) / len(answered) >= 0.9
    oos = [knowledge.triage_text(text=text, encoder=TfidfEncoder()) for text in fewshot["out_of_scope"]]
    assert sum(v.action is Action.HANDOFF for v in oos) / len(oos) >= 0.9


@pytest.mark.django_db
def test_the_knowledge_base_page_says_per_language_what_the_bot_can_do_and_what_to_add(
    client: Any, admin: Any, fewshot: dict[str, Any]
) -> None:
    records = {r.language: r for r in knowledge.calibrate(encoder=TfidfEncoder())}
    advice = records["en"].stats["advice"]
    assert 0 < len(advice["articles"]) <= 5
    assert set(advice["articles"]) <= {row["id"] for row in fewshot["articles"]}
    assert all(advice["add_examples"][str(a)] == 5 for a in advice["articles"]), "5 of 10 example questions"
    assert (advice["own_out_of_scope"], advice["add_out_of_scope"]) == (0, 60)
    weak = Article.objects.get(pk=advice["articles"][0])
    client.login(username="admin", password=PASSWORD)

    page = client.get(reverse("bot:articles")).content.decode()

    assert "What the bot can do now, per language" in page
    assert "Parley&#x27;s shipped ones" in page or "Parley's shipped ones" in page
    assert f'href="{reverse("bot:article", args=[weak.pk])}"' in page
    assert "Collect out-of-scope messages in en (you have 0)" in page
    assert "No threshold met the targets" not in page
