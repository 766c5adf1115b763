"""The customer's CRM data in a real browser: typed attributes edited, the CRM link, a CSV import,
with the page's Content-Security-Policy on (a violation would show in the console)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from customers.models import AttributeDefinition, Customer
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_edits_typed_attributes_follows_the_crm_link_and_imports_a_file(stack, page, admin, sms, tmp_path):
    AttributeDefinition.objects.create(key="plan", label="Plan", type="choice", choices=["free", "pro"])
    AttributeDefinition.objects.create(key="renewal", label="Renewal", type="date")
    sms.team.crm_link_template = "https://crm.example.com/contacts/{external_id}"
    sms.team.save()
    customer = receive_message(
        channel=sms, inbound=InboundMessage(provider_id="b1", address="+15005550006", text="Hi", name="Ann")
    ).customer
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    log_in(page, stack.base_url, "admin", PASSWORD)
    page.goto(f"{stack.base_url}/customers/{customer.pk}/")
    page.get_by_text("Edit details").click()
    page.get_by_label("External id").fill("crm-7")
    page.get_by_label("Plan").select_option("pro")
    page.get_by_label("Renewal").fill("2027-01-31")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("link", name="Open in Support's CRM")).to_have_attribute(
        "href", "https://crm.example.com/contacts/crm-7"
    )
    customer.refresh_from_db()
    assert customer.attributes == {"plan": "pro", "renewal": "2027-01-31"}
    file = Path(tmp_path) / "contacts.csv"
    file.write_text("external_id,email,plan\ncrm-8,bo@example.com,free\ncrm-9,cy@example.com,gold\n")
    page.goto(f"{stack.base_url}/customers/import/")
    page.set_input_files("input[name=file]", str(file))
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".import-error")).to_have_count(1)
    file.write_text("external_id,email,plan\ncrm-8,bo@example.com,free\ncrm-9,cy@example.com,pro\n")
    page.set_input_files("input[name=file]", str(file))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("2 created, 0 updated")).to_be_visible()
    wait_for(lambda: Customer.objects.filter(external_id__in=["crm-8", "crm-9"]).count() == 2)
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p]
