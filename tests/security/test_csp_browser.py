"""The Content-Security-Policy in real Chromium: the operator UI works under it and breaks none of it.

Every page records ``securitypolicyviolation`` events (an init script, which the policy does not
govern) and the console's errors; htmx swaps, the live socket and the forms must still work.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from connectors import simulator
from inbox.models import Conversation
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD
from tests.fakes.twilio import twilio_channel

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.usefixtures("transactional_db")]

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"} ${event.sample || ""}`);
});
"""


class Watch:
    """What went wrong on a page: policy violations, CSP console messages, uncaught errors."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        self.errors: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _console(self, message: Any) -> None:
        if message.type == "error" and ("Content Security Policy" in message.text or "Refused to" in message.text):
            self.console.append(message.text)

    def violations(self) -> list[str]:
        return list(self.page.evaluate("window.__violations || []")) + self.console

    def assert_clean(self, where: str) -> None:
        assert self.violations() == [], where
        assert self.errors == [], where


def customer_writes(text: str) -> None:
    response = simulator.customer_says(medium="sms", address="+15005550123", text=text, name="Zoe Tan")
    assert response.status_code < 300


def test_the_inbox_and_a_thread_work_under_the_policy_with_no_violation(stack, page, alice, support):
    # A phone line without browser keys: the page loads Twilio's SDK (its extra sources in the
    # policy), asks for a token, gets none and keeps the phone hidden; no call leaves the machine.
    twilio_channel("twilio-voice", team=support, from_number="+15555550100")
    watch = Watch(page)
    log_in(page, stack.base_url, "alice", PASSWORD)
    watch.assert_clean("login and inbox")
    assert page.evaluate("typeof window.Twilio") == "object"

    customer_writes("Where is my parcel?")
    row = page.locator("#conversation-list .row", has_text="Zoe Tan")
    expect(row).to_be_visible()  # the live socket's ping, then an htmx list refresh
    row.locator(".row-link").click()  # an htmx swap of the thread pane
    expect(page.locator("#thread .msg", has_text="Where is my parcel?")).to_be_visible()

    page.locator("[data-composer-text]").fill("It left the warehouse today.")
    page.locator("[data-composer-text]").press("Control+Enter")  # an htmx POST and its fragment
    expect(page.locator("#thread .msg.dir-out", has_text="It left the warehouse today.")).to_have_count(1)
    customer_writes("Thank you!")  # an out-of-band swap over the socket
    expect(page.locator("#thread .msg.dir-in", has_text="Thank you!")).to_be_visible()
    conversation = Conversation.objects.get()
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator(f"#thread-header-{conversation.pk} [data-field=status]")).to_contain_text("Resolved")
    watch.assert_clean("thread")

    # The policy is really enforced: an injected inline script is refused and reported.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        " document.body.appendChild(s); }"
    )
    page.wait_for_function("window.__violations.length > 0")
    assert page.evaluate("window.__ran === undefined")
    assert any(v.startswith("script-src") for v in watch.violations())


def test_the_other_pages_and_djangos_admin_work_under_the_policy(stack, page, admin, sms):
    customer_writes("Hello from the phone")
    watch = Watch(page)
    log_in(page, stack.base_url, "admin", PASSWORD)
    for path in ("/customers/", "/search/?q=phone", "/reports/", "/replies/", "/replies/new/", "/simulator/", "/kb/"):
        page.goto(stack.base_url + path)
        expect(page.locator("main")).to_be_visible()
        watch.assert_clean(path)

    # The reports' filters swap the page's part of the answer in with htmx.
    page.goto(stack.base_url + "/reports/")
    page.locator("select#report-days").select_option("7")
    expect(page).to_have_url(re.compile(r"days=7"))
    expect(page.locator("select#report-days")).to_have_value("7")
    watch.assert_clean("reports filter")

    # The knowledge base's example-question rows: added by htmx, removed by a static handler.
    page.goto(stack.base_url + "/kb/articles/new/")
    rows = page.locator("#example-rows tr")
    before = rows.count()
    page.get_by_role("button", name="Add an example question").click()
    expect(rows).to_have_count(before + 1)
    rows.last.locator("button[data-remove-row]").click()
    expect(rows).to_have_count(before)
    watch.assert_clean("knowledge base editor")

    for path in (
        "/admin/",
        "/admin/inbox/channel/",
        f"/admin/inbox/channel/{sms.pk}/change/",
        "/admin/inbox/operator/add/",
    ):
        page.goto(stack.base_url + path)
        expect(page.locator("#content")).to_be_visible()
        watch.assert_clean(path)
    # The admin's own scripts run: the two-box team picker of the operator form is built by JS.
    page.goto(stack.base_url + f"/admin/inbox/operator/{admin.pk}/change/")
    expect(page.locator("#id_teams_from")).to_be_attached()
    watch.assert_clean("operator change form")
