"""The API's docs page in real Chromium: vendored Swagger UI renders the served description under
the project's Content-Security-Policy, with no violation and no script error."""

from __future__ import annotations

from playwright.sync_api import expect

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
