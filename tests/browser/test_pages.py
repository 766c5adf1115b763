"""The pages' small behaviours in real Chromium: asking before a delete, filters that apply on
change, the language choice (static/parley.js and htmx's own attributes)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from bot.models import Article
from inbox.models import SavedReply
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")


def test_deleting_a_saved_reply_asks_first_and_nothing_is_deleted_when_the_operator_cancels(
    stack, page, alice, support
):
    saved = SavedReply.objects.create(title="Greeting", text="Hello!", team=support)
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.goto(f"{stack.base_url}/replies/{saved.pk}/")
    questions: list[str] = []

    def cancel(dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", cancel)
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    assert questions == ["Delete the saved reply “Greeting”?"]
    assert SavedReply.objects.filter(pk=saved.pk).exists()
    assert page.url.endswith(f"/replies/{saved.pk}/")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Saved reply “Greeting” deleted.")).to_be_visible()
    assert page.url.endswith("/replies/")
    assert not SavedReply.objects.filter(pk=saved.pk).exists()


def test_deleting_an_article_asks_first_and_nothing_is_deleted_when_the_admin_cancels(stack, page, admin):
    article = Article.objects.create(title="Passwords", answer="Use 'Forgot password'.")
    log_in(page, stack.base_url, "admin", PASSWORD)
    page.goto(f"{stack.base_url}/kb/articles/{article.pk}/")
    editor = page.locator("#kb-editor")

    page.once("dialog", lambda dialog: dialog.dismiss())
    editor.get_by_role("button", name="Delete").click()
    expect(editor.get_by_role("button", name="Delete")).to_be_visible()
    assert Article.objects.filter(pk=article.pk).exists()

    page.once("dialog", lambda dialog: dialog.accept())
    editor.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Deleted “Passwords”.")).to_be_visible()
    assert wait_for(lambda: not Article.objects.filter(pk=article.pk).exists())


def test_a_reports_filter_applies_on_change_in_place_and_the_address_follows(stack, page, admin, support):
    log_in(page, stack.base_url, "admin", PASSWORD)
    page.goto(f"{stack.base_url}/reports/")
    page.evaluate("window.__samePage = true")  # gone if the browser loaded a new page
    period = page.locator("select#report-days")
    expect(period).to_have_value("30")

    period.focus()
    period.select_option("7")
    expect(page).to_have_url(re.compile(r"/reports/\?days=7&team=$"))
    expect(page.locator(".period")).to_be_visible()
    expect(period).to_have_value("7")
    expect(period).to_be_focused()
    page.get_by_label("Team").select_option(str(support.pk))
    expect(page).to_have_url(re.compile(rf"/reports/\?days=7&team={support.pk}$"))
    expect(page.locator(".period")).to_contain_text("channels and conversations only")  # one team's
    assert page.evaluate("window.__samePage") is True


def test_the_language_choice_loads_the_page_again_in_that_language_and_direction(stack, page, alice):
    page.goto(f"{stack.base_url}/login/")
    page.get_by_label("Language").select_option("ru")
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.get_by_role("button", name="Войти")).to_be_visible()

    page.get_by_label("Имя пользователя").fill("alice")
    page.get_by_label("Пароль").fill(PASSWORD)
    page.get_by_role("button", name="Войти").click()
    page.wait_for_selector("body[data-live=online]")
    page.locator("#language-select").select_option("fa")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", "fa")
    expect(page.locator("#language-select")).to_have_value("fa")
