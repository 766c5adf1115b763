"""The customer CSV import: all or nothing per file, row errors shown, never merging on a name, resumable."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from customers import imports
from customers.models import AttributeDefinition, Customer, CustomerImport, Identity

pytestmark = pytest.mark.django_db


def upload(client: Client, text: str, name: str = "contacts.csv", **headers):
    return client.post(
        "/customers/import/", {"file": SimpleUploadedFile(name, text.encode(), content_type="text/csv")}, **headers
    )


@pytest.fixture
def staff(client, admin) -> Client:
    client.force_login(admin)
    return client


def test_staff_import_a_crm_export_and_see_it_done(staff):
    AttributeDefinition.objects.create(key="orders", label="Orders", type="number")
    known = Customer.objects.create(name="Bo")
    Identity.objects.create(customer=known, kind="email", value="bo@example.com")
    csv_text = (
        "external_id,email,phone,name,orders,colour\n"
        "crm-1,ann@example.com,+1 500 555 0006,Ann,3,blue\n"
        "crm-2,BO@example.com,,Bo Smith,,\n"
        'crm-3,,,\'=HYPERLINK("x"),,\n'
    )
    response = upload(staff, csv_text)
    assert response.status_code == 302
    job = CustomerImport.objects.get()
    assert (job.status, job.total, job.created, job.updated) == ("done", 3, 2, 1)
    assert job.content == ""
    page = staff.get(response["Location"]).content.decode()
    assert "2 created, 1 updated" in page
    ann = Customer.objects.get(external_id="crm-1")
    assert ann.attributes == {"orders": 3, "colour": "blue"}
    assert set(ann.identities.values_list("kind", "value")) == {("email", "ann@example.com"), ("phone", "+15005550006")}
    known.refresh_from_db()
    assert (known.external_id, known.name) == ("crm-2", "Bo Smith")
    assert Customer.objects.get(external_id="crm-3").name == '=HYPERLINK("x")'  # the apostrophe was the file's


def test_a_file_with_bad_rows_imports_nothing_and_lists_every_error(staff):
    AttributeDefinition.objects.create(key="orders", label="Orders", type="number")
    response = upload(
        staff,
        "external_id,email,orders\ncrm-1,ann@example.com,2\ncrm-2,not-an-email,3\n,,4\ncrm-4,d@example.com,many\n",
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert page.count('class="import-error"') == 3
    assert not Customer.objects.exists()
    assert not CustomerImport.objects.exists()


def test_a_row_naming_two_existing_customers_fails_the_whole_file_and_merges_nobody(staff):
    first = Customer.objects.create(name="A", external_id="crm-1")
    second = Customer.objects.create(name="B")
    Identity.objects.create(customer=second, kind="email", value="b@example.com")
    response = upload(staff, "external_id,email,name\ncrm-9,new@example.com,New\ncrm-1,b@example.com,A\n")
    job = CustomerImport.objects.get()
    assert job.status == "failed"
    assert job.errors[0]["row"] == 2
    assert job.errors[0]["field"] == "email"
    assert response.status_code == 302
    assert Customer.objects.count() == 2  # the first row was rolled back too
    assert not Customer.objects.filter(external_id="crm-9").exists()
    assert set(Identity.objects.values_list("customer_id", flat=True)) == {second.pk}
    assert first.pk != second.pk


def test_the_same_name_is_never_a_match(staff):
    Customer.objects.create(name="Same Name")
    upload(staff, "email,name\nsame@example.com,Same Name\n")
    assert Customer.objects.filter(name="Same Name").count() == 2


def test_a_large_file_goes_to_the_worker_and_a_stalled_one_can_be_resumed(staff, settings):
    settings.PARLEY_CUSTOMER_IMPORT_INLINE_ROWS = 1
    response = upload(staff, "email\na@example.com\nb@example.com\n", headers={"HX-Request": "true"})
    assert response.status_code == 202
    job = CustomerImport.objects.get()
    assert job.status == "pending"
    assert imports.stalled(job)  # no worker took it (its task is only sent on commit)
    page = staff.get(f"/customers/imports/{job.pk}/").content.decode()
    assert "Resume" in page
    assert staff.post(f"/customers/imports/{job.pk}/resume/", headers={"HX-Request": "true"}).status_code == 202
    imports.run_import(job_id=job.pk)  # what the worker does
    job.refresh_from_db()
    assert (job.status, job.created) == ("done", 2)
    assert staff.post(f"/customers/imports/{job.pk}/resume/").status_code == 409  # finished: nothing to resume
    assert imports.run_import(job_id=job.pk).created == 2  # a second run changes nothing


def test_operators_who_are_not_staff_cannot_import(client, alice):
    client.force_login(alice)
    assert client.get("/customers/import/").status_code == 403
    assert upload(client, "email\na@example.com\n").status_code == 403
    assert not Customer.objects.exists()


def test_a_non_csv_or_empty_file_is_a_400(staff):
    assert upload(staff, "", name="x.csv").status_code == 400
    assert upload(staff, "email\n", name="x.csv").status_code == 400
    assert upload(staff, "a,b\n1,2\n", name="x.csv").status_code == 400
    assert upload(staff, "email\na@example.com\n", name="x.xlsx").status_code == 400
