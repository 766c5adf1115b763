"""The knowledge-base pages for admins: access, editing articles, import/export, try the bot (TF-IDF encoder)."""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from bot import knowledge
from bot.encoders import TfidfEncoder, spec_name
from bot.engine import Action
from bot.kb import CALIBRATION_KEY
from bot.models import Article, Calibration, EncodedText, ExampleQuestion, ImportJob
from inbox.models import Channel
from inbox.services import channels
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def no_calibration_running(tfidf_bot: None) -> Iterator[None]:
    cache.delete(CALIBRATION_KEY)
    yield
    cache.delete(CALIBRATION_KEY)


@pytest.fixture
def staff(client, admin):
    client.login(username="admin", password=PASSWORD)
    return client


def calibrate(threshold: float = 0.2, margin: float = 0.0, language: str = "*") -> Calibration:
    return Calibration.objects.create(
        encoder=TfidfEncoder().name,
        language=language,
        threshold=threshold,
        margin=margin,
        computed_at=timezone.now(),
        stats={"feasible": True, "knowledge_base": knowledge.fingerprint()},
    )


def article_form(title: str, answer: str, examples: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": title,
        "answer": answer,
        "language": "en",
        "tags": "",
        "is_active": "on",
        "example_text": [text for text, _ in examples],
        "example_language": [language for _, language in examples],
    }
    data.update(extra)
    return data


PASSWORDS = [("i forgot my password", ""), ("reset my password", ""), ("how do i change my password", "")]
DELIVERY = [("where is my parcel", ""), ("when will my order be delivered", ""), ("track my delivery", "")]
REFUNDS = [("how do i get a refund", ""), ("i want my money back", ""), ("refund my order please", "")]


def make(title: str, answer: str, examples: list[tuple[str, str]], **fields: Any) -> Article:
    article = Article.objects.create(title=title, answer=answer, **fields)
    ExampleQuestion.objects.bulk_create(
        [ExampleQuestion(article=article, text=t, language=lang or article.language) for t, lang in examples]
    )
    return article


@pytest.fixture
def kb() -> dict[str, Article]:
    return {
        "Passwords": make("Passwords", "Use 'Forgot password' on the sign-in page.", PASSWORDS, tags=["account"]),
        "Delivery": make("Delivery", "Parcels arrive in 2-3 working days.", DELIVERY, tags=["orders"]),
        "Refunds": make(
            "Refunds", "Refunds reach your card within 5 days.", [*REFUNDS, ("верните деньги", "ru")], tags=["orders"]
        ),
    }


# -- access ---------------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(reverse("bot:articles"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    ("method", "name", "args"),
    [
        ("get", "bot:articles", []),
        ("get", "bot:article_new", []),
        ("post", "bot:article_new", []),
        ("post", "bot:try", []),
        ("post", "bot:import", []),
        ("get", "bot:export", []),
        ("post", "bot:calibrate", []),
    ],
)
def test_operators_who_are_not_admins_get_403(client, alice, method, name, args):
    client.login(username="alice", password=PASSWORD)

    response = getattr(client, method)(reverse(name, args=args), article_form("Hijack", "No.", []))

    assert response.status_code == 403
    assert "Only admins may edit the knowledge base." in response.content.decode()
    assert not Article.objects.exists()


def test_operators_cannot_change_or_delete_an_article(client, alice, kb):
    client.login(username="alice", password=PASSWORD)
    passwords = kb["Passwords"]

    edit = client.post(reverse("bot:article", args=[passwords.pk]), article_form("Mine now", "x", []))
    delete = client.post(reverse("bot:article_delete", args=[passwords.pk]))

    assert (edit.status_code, delete.status_code) == (403, 403)
    passwords.refresh_from_db()
    assert passwords.title == "Passwords"


def test_only_admins_see_the_knowledge_base_link(client, alice, admin):
    client.login(username="alice", password=PASSWORD)
    assert reverse("bot:articles") not in client.get(reverse("inbox:index")).content.decode()
    client.logout()
    client.login(username="admin", password=PASSWORD)
    assert reverse("bot:articles") in client.get(reverse("inbox:index")).content.decode()


# -- the list ---------------------------------------------------------------------------------------------


def titles(response) -> list[str]:
    return [article.title for article in response.context["page"].articles]


def test_the_list_counts_example_questions(staff, kb):
    response = staff.get(reverse("bot:articles"))

    assert response.status_code == 200
    counts = {a.title: a.example_count for a in response.context["page"].articles}
    assert counts == {"Delivery": 3, "Passwords": 3, "Refunds": 4}
    assert "Knowledge base" in response.content.decode()


def test_search_finds_titles_answers_and_example_questions(staff, kb):
    url = reverse("bot:articles")

    assert titles(staff.get(url, {"q": "deliv"})) == ["Delivery"]
    assert titles(staff.get(url, {"q": "sign-in page"})) == ["Passwords"]
    assert titles(staff.get(url, {"q": "верните"})) == ["Refunds"]
    assert titles(staff.get(url, {"q": "nothing like this"})) == []


def test_filters_by_language_tag_and_channel(staff, kb, sms, whatsapp):
    kb["Delivery"].channels = [sms.pk]
    kb["Delivery"].save(update_fields=["channels", "updated_at"])
    make("Оплата", "Картой или наличными.", [("как оплатить", "")], language="ru")
    url = reverse("bot:articles")

    assert titles(staff.get(url, {"language": "ru"})) == ["Оплата"]
    assert titles(staff.get(url, {"tag": "orders"})) == ["Delivery", "Refunds"]
    assert "Delivery" not in titles(staff.get(url, {"channel": whatsapp.pk})), "limited to SMS"
    assert "Delivery" in titles(staff.get(url, {"channel": sms.pk}))
    assert "Passwords" in titles(staff.get(url, {"channel": whatsapp.pk})), "no channels: every channel"


def test_the_results_fragment_answers_htmx(staff, kb):
    response = staff.get(reverse("bot:articles"), {"q": "refund"}, HTTP_HX_TARGET="kb-results", **HTMX)

    body = response.content.decode()
    assert "/kb/export/?format=csv&amp;q=refund" in body, "the export links follow the filters"
    assert body.lstrip().startswith('<div id="kb-results"')
    assert "Refunds" in body
    assert "<html" not in body


# -- create, edit, delete --------------------------------------------------------------------------------


def test_creating_an_article_makes_the_bot_answer_with_it(staff, sms):
    calibrate()
    make("Delivery", "Parcels arrive in 2-3 working days.", DELIVERY)
    assert knowledge.triage_text(text="i forgot my password").action is Action.HANDOFF  # only Delivery to pick from

    response = staff.post(
        reverse("bot:article_new"),
        article_form(
            "Passwords",
            "Use 'Forgot password'.",
            [*PASSWORDS, ("я забыл пароль", "ru")],
            tags="account, login",
            channels=[sms.pk],
        ),
        **HTMX,
    )

    assert response.status_code == 200
    assert "kb-changed" in json.loads(response["HX-Trigger"])
    article = Article.objects.get(title="Passwords")
    assert response["HX-Push-Url"] == reverse("bot:article", args=[article.pk])
    assert article.tags == ["account", "login"]
    assert article.channels == [sms.pk]
    assert sorted(article.examples.values_list("text", "language")) == sorted(
        [(t, "en") for t, _ in PASSWORDS] + [("я забыл пароль", "ru")]
    )
    verdict = knowledge.triage_text(text="i forgot my password", channel_id=sms.pk)
    assert (verdict.action, verdict.article_ids) == (Action.ANSWER, [article.pk])


def test_editing_examples_changes_the_answer_and_re_embeds_only_the_new_ones(staff, kb):
    calibrate()
    passwords = kb["Passwords"]
    assert knowledge.triage_text(text="where do i find my invoice").article_ids != [passwords.pk]
    cached = EncodedText.objects.count()

    response = staff.post(
        reverse("bot:article", args=[passwords.pk]),
        article_form(
            "Passwords and invoices",
            "Invoices are under Account.",
            [*PASSWORDS, ("where do i find my invoice", ""), ("download my invoice", "")],
        ),
        **HTMX,
    )

    assert response.status_code == 200
    assert "Saved." in response.content.decode()
    verdict = knowledge.triage_text(text="where do i find my invoice")
    assert verdict.article_ids == [passwords.pk]
    assert EncodedText.objects.count() == cached + 2, "the two new examples; the others come from the cache"
    passwords.refresh_from_db()
    assert passwords.title == "Passwords and invoices"


def test_removing_an_example_question_and_changing_its_language(staff, kb):
    delivery = kb["Delivery"]
    kept = delivery.examples.get(text="where is my parcel")

    response = staff.post(
        reverse("bot:article", args=[delivery.pk]),
        article_form("Delivery", "Parcels arrive soon.", [("where is my parcel", "en"), ("track my delivery", "de")]),
    )

    assert response.status_code == 302
    assert sorted(delivery.examples.values_list("text", "language")) == [
        ("track my delivery", "de"),
        ("where is my parcel", "en"),
    ]
    assert delivery.examples.get(text="where is my parcel").pk == kept.pk, "an unchanged example keeps its row"


def test_every_edit_moves_the_bot_index_on(staff, kb):
    before = knowledge.current_snapshot()
    refunds = kb["Refunds"]
    data = article_form("Refunds", refunds.answer, [*REFUNDS, ("верните деньги", "uk")], tags="orders")

    staff.post(reverse("bot:article", args=[refunds.pk]), data)

    assert knowledge.current_snapshot() is not before, "only an example's language changed"


def test_deleting_an_article_stops_the_bot_answering_with_it(staff, kb):
    calibrate()
    passwords = kb["Passwords"]
    assert knowledge.triage_text(text="i forgot my password").article_ids == [passwords.pk]

    response = staff.post(reverse("bot:article_delete", args=[passwords.pk]), **HTMX)

    assert response.status_code == 200
    assert "kb-changed" in json.loads(response["HX-Trigger"])
    assert not Article.objects.filter(pk=passwords.pk).exists()
    assert not ExampleQuestion.objects.filter(article_id=passwords.pk).exists()
    verdict = knowledge.triage_text(text="i forgot my password")
    assert passwords.pk not in {c.article_id for c in verdict.ranking.candidates}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": ""}, "This field is required."),
        ({"language": "english please"}, "is not a language code"),
        ({"example_text": ["reset my password", "reset my password"], "example_language": ["", ""]}, "listed twice"),
        ({"example_text": ["x" * 501], "example_language": [""]}, "longer than 500"),
        ({"channels": ["999999"]}, "Select a valid choice"),
    ],
)
def test_a_bad_article_is_refused_with_the_reason_and_nothing_changes(staff, kb, change, message):
    passwords = kb["Passwords"]
    data = {**article_form("Passwords 2", "Changed.", PASSWORDS), **change}

    response = staff.post(reverse("bot:article", args=[passwords.pk]), data, **HTMX)

    assert response.status_code == 400
    assert message in response.content.decode()
    passwords.refresh_from_db()
    assert (passwords.title, passwords.answer) == ("Passwords", "Use 'Forgot password' on the sign-in page.")
    assert passwords.examples.count() == 3


def test_an_unknown_article_is_404(staff):
    assert staff.get(reverse("bot:article", args=[424242])).status_code == 404
    assert staff.post(reverse("bot:article_delete", args=[424242])).status_code == 404


def test_a_new_example_row_comes_as_a_fragment(staff):
    response = staff.get(reverse("bot:example_row"), **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="example_text"' in body
    assert "autofocus" in body
    assert "<html" not in body


# -- export and import -------------------------------------------------------------------------------------


def snapshot_of_kb() -> list[tuple[Any, ...]]:
    return sorted(
        (
            a.title,
            a.answer,
            a.language,
            tuple(a.tags),
            tuple(a.channels),
            a.is_active,
            tuple(sorted(a.examples.values_list("text", "language"))),
        )
        for a in Article.objects.all()
    )


def row_errors(response) -> list[tuple[int, str]]:
    found = re.findall(r'<tr class="import-error"><td>(\d+|file)</td><td>(\w*)</td>', response.content.decode())
    return [(0 if row == "file" else int(row), field) for row, field in found]


def upload(client, name: str, content: str | bytes, **extra: Any):
    data = content.encode() if isinstance(content, str) else content
    file = io.BytesIO(data)
    file.name = name
    return client.post(reverse("bot:import"), {"file": file}, **extra)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_then_import_gives_back_the_same_knowledge_base(staff, kb, sms, fmt):
    kb["Delivery"].channels = [sms.pk]
    kb["Delivery"].is_active = False
    kb["Delivery"].save(update_fields=["channels", "is_active", "updated_at"])
    make("Оплата", "Картой.", [("как оплатить", ""), ("en: how do i pay", "")], language="ru")
    before = snapshot_of_kb()

    exported = staff.get(reverse("bot:export"), {"format": fmt})
    assert exported.status_code == 200
    assert f".{fmt}" in exported["Content-Disposition"]
    kb["Passwords"].delete()
    ExampleQuestion.objects.filter(article=kb["Refunds"]).delete()
    Article.objects.filter(pk=kb["Delivery"].pk).update(title="Shipping", answer="Changed.", tags=[], channels=[])
    response = upload(staff, f"kb.{fmt}", exported.content, **HTMX)

    assert response.status_code == 200, response.content.decode()
    assert "1 articles created, 3 updated" in response.content.decode()
    assert "kb-changed" in json.loads(response["HX-Trigger"])
    assert snapshot_of_kb() == before
    assert Article.objects.filter(pk=kb["Delivery"].pk, title="Delivery").exists(), "matched by id, renamed back"
    assert ImportJob.objects.get().status == ImportJob.Status.DONE


def test_the_csv_export_is_a_spreadsheet_with_one_row_per_article(staff, kb, sms):
    kb["Refunds"].channels = [sms.pk]
    kb["Refunds"].save(update_fields=["channels", "updated_at"])

    exported = staff.get(reverse("bot:export"), {"format": "csv", "tag": "orders"})

    text = exported.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["title"] for r in rows] == ["Delivery", "Refunds"], "the filters apply"
    refunds = rows[1]
    assert refunds["channels"] == "SMS"
    assert refunds["examples"].splitlines() == [t for t, _ in REFUNDS] + ["ru: верните деньги"]
    assert refunds["active"] == "yes"


def test_importing_updates_by_title_or_id_and_creates_the_rest(staff, kb, whatsapp):
    refunds = kb["Refunds"]
    content = (
        "title;answer;tags;channels;examples;id\n"  # semicolons, as some spreadsheets save
        f'Passwords renamed;New answer.;account;;"reset my password\nuk: я забув пароль";{kb["Passwords"].pk}\n'
        'refunds;Money back in 3 days.;orders, money;WhatsApp;"how do i get a refund\nru: верните деньги";\n'
        'Opening hours;9 to 5.;;;"when are you open";\n'
    )

    response = upload(staff, "kb.csv", content)

    assert response.status_code == 200, response.content.decode()
    assert Article.objects.count() == 4
    passwords = Article.objects.get(pk=kb["Passwords"].pk)
    assert (passwords.title, passwords.answer) == ("Passwords renamed", "New answer.")
    assert sorted(passwords.examples.values_list("text", "language")) == [
        ("reset my password", "en"),
        ("я забув пароль", "uk"),
    ]
    refunds.refresh_from_db()
    assert (refunds.answer, refunds.tags, refunds.channels) == (
        "Money back in 3 days.",
        ["orders", "money"],
        [whatsapp.pk],
    )
    assert refunds.examples.count() == 2
    assert Article.objects.get(title="Opening hours").examples.count() == 1


def test_a_bad_csv_gets_400_with_every_row_error_and_nothing_is_stored(staff, kb):
    before = snapshot_of_kb()
    content = (
        "title,answer,language,channels,examples\n"
        "Passwords,Changed answer,en,,reset my password\n"  # fine on its own
        "Shipping,,en,,where is my parcel\n"  # row 3: no answer
        "Returns,Send it back.,english,,return it\n"  # row 4: bad language
        "Invoices,Under Account.,en,Fax line,my invoice\n"  # row 5: unknown channel
        "passwords,Twice,en,,again\n"  # row 6: same title as row 2
    )

    response = upload(staff, "kb.csv", content, **HTMX)

    assert response.status_code == 400
    assert row_errors(response) == [(3, "answer"), (4, "language"), (5, "channels"), (6, "title")]
    body = response.content.decode()
    assert "Nothing was imported" in body
    assert "There is no channel named “Fax line”" in body
    assert snapshot_of_kb() == before
    assert not ImportJob.objects.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("kb.json", '{"articles": [{"title": "A", "answer": "B"},]}', "not valid JSON"),
        ("kb.json", '{"articles": [{"title": "A", "answer": "B", "colour": "red"}]}', "Unknown columns: colour"),
        ("kb.json", '{"articles": [{"title": "A", "answer": "B", "examples": "not a list"}]}', ""),
        ("kb.json", "[]", "The file has no articles."),
        ("kb.csv", "name,text\nA,B\n", "Unknown columns"),
        ("kb.csv", b"title,answer\n\xff\xfeA,B\n", "not UTF-8"),
        ("kb.xlsx", "whatever", "Choose a .json or .csv file."),
    ],
)
def test_bad_files_are_refused_with_a_reason(staff, name, content, message):
    response = upload(staff, name, content)

    if message == "":
        # A string of examples in JSON is read line by line, like a CSV cell: that one is fine.
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Article.objects.exists()


def test_a_json_file_with_a_bad_article_imports_nothing(staff):
    content = json.dumps(
        [
            {"title": "Good", "answer": "Fine.", "examples": ["fine question"]},
            {"title": "Bad", "answer": "x", "examples": [{"text": "q", "language": "not a code"}]},
        ]
    )

    response = upload(staff, "kb.json", content)

    assert response.status_code == 400
    assert row_errors(response) == [(2, "examples")]
    assert not Article.objects.exists()


def test_an_upload_without_a_file_is_a_400(staff):
    response = staff.post(reverse("bot:import"), {}, **HTMX)

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_export_refuses_an_unknown_format(staff):
    assert staff.get(reverse("bot:export"), {"format": "xml"}).status_code == 400


# -- try the bot -----------------------------------------------------------------------------------------


def test_the_try_box_shows_the_answer_confidence_threshold_and_runner_ups(staff, kb):
    calibrate(threshold=0.2, language="*")
    calibrate(threshold=0.25, language="en")

    response = staff.post(reverse("bot:try"), {"text": "i forgot my password"}, **HTMX)

    assert response.status_code == 200
    verdict = knowledge.triage_text(text="i forgot my password")
    assert verdict.point.threshold == pytest.approx(0.25), "the calibrated threshold of the message's language"
    body = response.content.decode()
    assert "The bot would answer." in body
    assert "Use &#x27;Forgot password&#x27; on the sign-in page." in body
    assert body.count('class="candidate"') == 3, "the article and the runner-ups"
    for candidate in verdict.ranking.candidates:
        assert f"{candidate.confidence:.3f}" in body
    assert "0.250" in body
    assert "(for en)" in body


def test_the_try_box_says_when_the_bot_is_not_calibrated(staff, kb):
    response = staff.post(reverse("bot:try"), {"text": "i forgot my password"}, **HTMX)

    body = response.content.decode()
    assert "The bot would hand off to a person." in body
    assert "not calibrated yet" in body
    assert "python manage.py bot calibrate" in body
    assert body.count('class="candidate"') == 3, "the ranking is still shown"


def test_the_try_box_shows_a_hand_off_below_the_threshold_and_a_request_for_a_person(staff, kb):
    calibrate(threshold=0.99)

    response = staff.post(reverse("bot:try"), {"text": "can i talk to a human about my parcel"}, **HTMX)

    body = response.content.decode()
    assert "The bot would hand off to a person." in body
    assert "below the threshold 0.990" in body
    assert "the customer asks for a person" in body


def test_the_try_box_asks_between_two_close_articles(staff, kb):
    calibrate(threshold=0.0, margin=1.0)

    response = staff.post(reverse("bot:try"), {"text": "refund my parcel"}, **HTMX)

    body = response.content.decode()
    assert "The bot would ask: did you mean A or B?" in body
    assert "The best two articles are closer than the margin 1.000." in body


def test_the_try_box_only_ranks_articles_the_channel_may_use(staff, kb, sms):
    calibrate()
    other = channels.create_channel(
        kind="simulator", name="Web chat", team=None, channel_settings={"medium": "webchat"}
    )
    kb["Passwords"].channels = [sms.pk]
    kb["Passwords"].save(update_fields=["channels", "updated_at"])

    response = staff.post(reverse("bot:try"), {"text": "i forgot my password", "channel": other.pk}, **HTMX)

    body = response.content.decode()
    assert body.count('class="candidate"') == 2
    assert ">Passwords</a>" not in body
    assert ">Delivery</a>" in body


def test_the_try_box_refuses_an_empty_message(staff):
    response = staff.post(reverse("bot:try"), {"text": ""}, **HTMX)

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_a_stale_calibration_is_pointed_out(staff, kb):
    calibrate()
    make("Opening hours", "9 to 5.", [("when are you open", "")])

    response = staff.post(reverse("bot:try"), {"text": "when are you open"}, **HTMX)

    assert "changed since the last calibration" in response.content.decode()


def test_the_full_page_renders_for_a_new_admin(staff, sms):
    assert isinstance(sms, Channel)
    response = staff.get(reverse("bot:articles"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "No articles yet." in body
    assert "Try the bot" in body
    assert "Import" in body
    assert staff.get(reverse("bot:article_new")).status_code == 200


def test_the_examples_in_the_bot_docs_import(staff):
    page = (Path(__file__).resolve().parents[2] / "docs" / "bot.md").read_text()
    blocks = re.findall(r"```(csv|json)\n(.*?)```", page, re.DOTALL)
    assert [fmt for fmt, _ in blocks] == ["csv", "json"]

    for fmt, content in blocks:
        Article.objects.all().delete()
        response = upload(staff, f"readme.{fmt}", textwrap.dedent(content))
        assert response.status_code == 200, response.content.decode()
        article = Article.objects.get(title="Delivery times")
        assert article.tags == ["orders"]
        expected = {"csv": ["en", "en", "ru"], "json": ["en", "ru"]}[fmt]
        assert sorted(article.examples.values_list("language", flat=True)) == expected


def test_calibrate_now_hands_the_work_to_the_worker_once(staff):
    page = staff.get(reverse("bot:articles")).content.decode()
    assert "Not calibrated yet" in page
    assert "Calibrate now" in page

    first = staff.post(reverse("bot:calibrate"), **HTMX)
    again = staff.post(reverse("bot:calibrate"), **HTMX)

    assert first.status_code == 202
    body = first.content.decode()
    assert "Calibrating in the worker" in body
    assert 'hx-trigger="every 2s"' in body
    assert again.status_code == 409
    assert "It was already running." in again.content.decode()

    calibrate()  # what the worker stores when it is done
    status = staff.get(reverse("bot:calibrate"), **HTMX).content.decode()
    assert "Thresholds calibrated" in status
    assert "every 2s" not in status


def test_the_page_shows_the_bot_encoders_calibration_not_a_newer_one_of_another(staff, settings):
    settings.BOT_ENCODER = "use+e5"  # `bot calibrate` calibrates the TF-IDF fallback after it
    bots = spec_name()
    assert bots.startswith("use-m3-")
    assert "+e5-small-q4-" in bots
    Calibration.objects.create(encoder=bots, language="*", threshold=0.4, margin=0.0, computed_at=timezone.now())
    calibrate()  # the fallback's, newer
    page = staff.get(reverse("bot:articles")).content.decode()
    assert bots in page
    assert TfidfEncoder().name not in page

    settings.BOT_ENCODER = "e5"  # never calibrated
    assert "Not calibrated yet" in staff.get(reverse("bot:articles")).content.decode()
