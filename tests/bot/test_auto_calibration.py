"""A knowledge base that changed and was then left alone for two minutes is calibrated without
anyone pressing "Calibrate now": the scheduler looks every minute (bot/kb.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from bot import kb, tasks
from bot.models import Article, Calibration, ExampleQuestion

pytestmark = pytest.mark.django_db

QUESTIONS = {
    "Passwords": ["i forgot my password", "reset my password", "how do i change my password"],
    "Delivery": ["where is my parcel", "when will my order be delivered", "track my delivery"],
}


@pytest.fixture(autouse=True)
def clean_state(tfidf_bot: None) -> Iterator[None]:
    for key in (kb.CALIBRATION_KEY, kb.SIGNATURE_KEY):
        cache.delete(key)
    yield
    for key in (kb.CALIBRATION_KEY, kb.SIGNATURE_KEY):
        cache.delete(key)


def written(minutes_ago: float) -> None:
    """Articles and example questions last edited ``minutes_ago``."""
    for title, questions in QUESTIONS.items():
        article = Article.objects.create(title=title, answer=f"About {title.lower()}.")
        ExampleQuestion.objects.bulk_create(ExampleQuestion(article=article, text=text) for text in questions)
    at = timezone.now() - timedelta(minutes=minutes_ago)
    Article.objects.update(updated_at=at)
    ExampleQuestion.objects.update(updated_at=at)


def test_a_knowledge_base_left_alone_after_an_edit_is_calibrated_once():
    written(minutes_ago=5)
    assert kb.calibrate_if_changed()
    assert kb.calibration_started() is not None  # the page shows it running
    assert not kb.calibrate_if_changed()  # one at a time


def test_a_knowledge_base_being_written_waits_until_it_is_quiet():
    written(minutes_ago=0.5)
    assert not kb.calibrate_if_changed()
    assert kb.calibrate_if_changed(now=timezone.now() + timedelta(seconds=kb.QUIET_SECONDS))


def test_after_a_calibration_only_a_new_change_starts_another():
    written(minutes_ago=5)
    tasks.recalibrate()  # what the worker runs, here in-process
    assert Calibration.objects.exists()
    assert not kb.calibrate_if_changed()  # the knowledge base it saw has not changed
    ExampleQuestion.objects.filter(text="track my delivery").delete()  # a deletion changes it too
    assert kb.calibrate_if_changed()


def test_an_empty_knowledge_base_is_not_calibrated():
    assert not kb.calibrate_if_changed()
