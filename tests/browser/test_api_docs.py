"""The API's pages in real Chromium: vendored Swagger UI renders the served description under the
project's Content-Security-Policy, with no violation and no script error; an operator makes,
sees once, uses and revokes a token of their own."""

from __future__ import annotations

import os

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("transactional_db")

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


def test_the_docs_render_the_description_with_no_policy_violation(stack, page):
    errors: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    page.goto(f"{stack.base_url}/api/v1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Parley API")
    expect(page.locator(".opblock-tag", has_text="conversations")).to_be_visible()
    page.locator(".opblock-summary", has_text="/api/v1/conversations").first.click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    assert page.evaluate("window.__violations") == []
    assert errors == []


def test_an_operator_makes_a_token_sees_it_once_uses_it_and_revokes_it(stack, page, alice):
    log_in(page, stack.base_url, "alice", PASSWORD)
    page.get_by_role("link", name="API", exact=True).click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    page.get_by_label("Name").fill("My scripts")
    page.get_by_role("button", name="Make a token").click()
    token = page.locator("[data-token]").inner_text().strip()
    assert token.startswith("parley_")
    if os.environ.get("PARLEY_SCREENSHOTS"):
        page.screenshot(path=os.environ["PARLEY_SCREENSHOTS"] + "/api-tokens.png", full_page=True)
    answer = httpx.get(f"{stack.base_url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.json()["username"] == "alice"
    page.goto(f"{stack.base_url}/api/tokens/")
    expect(page.locator("[data-token]")).to_have_count(0)  # shown once
    expect(page.get_by_role("cell", name="My scripts")).to_be_visible()
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    answer = httpx.get(f"{stack.base_url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 401
