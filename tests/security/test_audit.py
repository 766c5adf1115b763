"""The audit log: each recorded action appears, entries cannot be changed or deleted, and only staff
read and download it (as CSV whose cells a spreadsheet will not run)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import DatabaseError, connection, transaction

from audit.models import AppendOnly, Entry
from audit.services import record
from bot import kb
from bot.transfer import ArticleInput
from customers.models import Customer
from inbox.models import Operator, Team
from inbox.services.customers import merge_customers, undo_merge
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def entries(**filters) -> list[Entry]:
    return list(Entry.objects.filter(**filters).order_by("id"))


@pytest.fixture
def staff_client(client, admin):
    client.force_login(admin)
    return client


# -- sign-ins -------------------------------------------------------------------------------------------


def test_a_sign_in_is_recorded_with_who_and_from_where(client, alice):
    client.post("/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="198.51.100.4")
    (entry,) = entries(action="signed_in")
    assert (entry.actor, entry.actor_id, entry.address) == ("alice", alice.pk, "198.51.100.4")


def test_a_failed_sign_in_is_recorded_with_the_username_and_never_the_password(client, alice):
    client.post("/login/", {"username": "alice", "password": "hunter2-guess"}, REMOTE_ADDR="203.0.113.5")
    (entry,) = entries(action="sign_in_failed")
    assert (entry.actor, entry.actor_id, entry.address) == ("alice", None, "203.0.113.5")
    assert "hunter2-guess" not in json.dumps(entry.details)


def test_a_lock_out_is_recorded(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert [e.actor for e in entries(action="locked_out")] == ["alice", "alice"]  # set off, then refused
    assert len(entries(action="sign_in_failed")) == settings.AXES_FAILURE_LIMIT - 1


def test_a_sign_out_is_recorded(client, alice):
    client.force_login(alice)
    client.post("/logout/")
    assert [e.actor for e in entries(action="signed_out")] == ["alice"]


# -- changes in the admin -------------------------------------------------------------------------------


def test_a_team_created_changed_and_deleted_in_the_admin_is_recorded(staff_client):
    staff_client.post("/admin/inbox/team/add/", {"name": "Billing", "timezone": "UTC"})
    team = Team.objects.get(name="Billing")
    staff_client.post(f"/admin/inbox/team/{team.pk}/change/", {"name": "Billing EU", "timezone": "Europe/Berlin"})
    staff_client.post(f"/admin/inbox/team/{team.pk}/delete/", {"post": "yes"})
    rows = entries(target_type="team")
    assert [(e.action, e.actor, e.target_id) for e in rows] == [
        ("created", "admin", str(team.pk)),
        ("changed", "admin", str(team.pk)),
        ("deleted", "admin", str(team.pk)),
    ]
    assert rows[1].details == {"fields": ["Name", "Time zone"]}


def _operator_form(operator: Operator, **changes):
    data = {
        "username": operator.username,
        "first_name": operator.first_name,
        "last_name": operator.last_name,
        "email": operator.email,
        "is_active": "on",
        "date_joined_0": operator.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": operator.date_joined.strftime("%H:%M:%S"),
        "display_name": operator.display_name,
        "teams": [t.pk for t in operator.teams.all()],
        "capacity": operator.capacity,
        "presence": operator.presence,
    }
    return {**data, **changes}


def test_an_operator_given_a_role_and_a_team_in_the_admin_is_recorded(staff_client, alice, sales):
    supervisors = Group.objects.create(name="Supervisors")
    response = staff_client.post(
        f"/admin/inbox/operator/{alice.pk}/change/",
        _operator_form(alice, is_staff="on", groups=[supervisors.pk], teams=[*alice.team_ids, sales.pk]),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = entries(target_type="operator", action="changed")
    assert entry.target == str(alice)
    assert {"Staff status", "Groups", "Teams"} <= set(entry.details["fields"])


def test_a_password_set_in_the_admin_is_recorded_without_it(staff_client, alice):
    staff_client.post(
        f"/admin/inbox/operator/{alice.pk}/password/",
        {"password1": "A-new-long-passphrase-1", "password2": "A-new-long-passphrase-1", "usable_password": "true"},
    )
    (entry,) = entries(target_type="operator", action="changed")
    assert "A-new-long-passphrase-1" not in json.dumps(entry.details)
    assert entry.target_id == str(alice.pk)


def test_a_role_created_and_changed_in_the_admin_is_recorded(staff_client):
    permission = Permission.objects.get(codename="view_conversation")
    staff_client.post("/admin/auth/group/add/", {"name": "Readers", "permissions": [permission.pk]})
    group = Group.objects.get(name="Readers")
    staff_client.post(f"/admin/auth/group/{group.pk}/change/", {"name": "Readers", "permissions": []})
    assert [(e.action, e.target) for e in entries(target_type="role")] == [
        ("created", "Readers"),
        ("changed", "Readers"),
    ]


def test_a_channel_added_and_deleted_in_the_admin_is_recorded(staff_client, support):
    staff_client.post(
        "/admin/inbox/channel/add/",
        {
            "kind": "simulator",
            "name": "Sim line",
            "team": support.pk,
            "is_active": "on",
            "settings": '{"medium": "sms"}',
        },
    )
    channel = support.channels.get(name="Sim line")
    staff_client.post(f"/admin/inbox/channel/{channel.pk}/delete/", {"post": "yes"})
    rows = entries(target_type="channel", target_id=str(channel.pk))
    assert [e.action for e in rows] == ["created", "deleted"]
    assert rows[0].details["secret_keys"] == ["secret"]  # the simulator's generated signing secret


# -- knowledge base, merges, downloads ----------------------------------------------------------------


def test_knowledge_base_articles_created_changed_deleted_and_imported_are_recorded(admin):
    article = kb.create_article(data=ArticleInput(title="Refunds", answer="Within 5 days."), by=admin)
    kb.update_article(article=article, data=ArticleInput(title="Refunds", answer="Within 3 days."), by=admin)
    kb.delete_article(article=article, by=admin)
    kb.start_import(data=b"title,answer\r\nDelivery,Two days.\r\n", filename="kb.csv", by=admin)
    rows = [(e.action, e.target_type, e.actor) for e in entries()]
    assert rows == [
        ("created", "article", "admin"),
        ("changed", "article", "admin"),
        ("deleted", "article", "admin"),
        ("imported", "importjob", "admin"),  # one entry for the whole file
    ]


def test_a_customer_merge_and_its_undo_are_recorded(admin):
    source, target = Customer.objects.create(name="Ann"), Customer.objects.create(name="Ann B.")
    merge = merge_customers(source=source, target=target, by=admin)
    undo_merge(merge=merge, by=admin)
    rows = entries(target_type="customer")
    assert [(e.action, e.actor, e.target_id) for e in rows] == [
        ("merged", "admin", str(target.pk)),
        ("merge_undone", "admin", str(target.pk)),
    ]
    assert rows[0].details == {"source": source.pk, "merge": merge.pk}


def test_downloads_of_reports_and_of_the_knowledge_base_are_recorded(client, alice, admin):
    client.force_login(alice)
    assert client.get("/reports/", {"format": "csv", "days": 7}).status_code == 200
    client.force_login(admin)
    assert client.get("/kb/export/", {"format": "json"}).status_code == 200
    assert [(e.actor, e.target_type) for e in entries(action="exported")] == [
        ("alice", "report"),
        ("admin", "knowledge base"),
    ]


# -- append-only ------------------------------------------------------------------------------------------


def test_an_entry_cannot_be_changed_or_deleted_through_the_orm(db):
    entry = record(action="created", target_type="team", target_label="Support")
    entry.target = "Forged"
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        Entry.objects.filter(pk=entry.pk).update(target="Forged")
    with pytest.raises(AppendOnly):
        Entry.objects.all().delete()
    assert Entry.objects.get(pk=entry.pk).target == "Support"


def test_the_database_refuses_to_change_an_entry_even_with_raw_sql(db):
    entry = record(action="created", target_type="team", target_label="Support")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_entry SET target = 'Forged'")
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_entry")
    assert Entry.objects.get(pk=entry.pk).target == "Support"


def test_the_admin_shows_entries_read_only_even_to_a_superuser(staff_client):
    entry = record(action="created", target_type="team", target_label="Support")
    assert staff_client.get("/admin/audit/entry/").status_code == 200
    page = staff_client.get(f"/admin/audit/entry/{entry.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert staff_client.post(f"/admin/audit/entry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert staff_client.get("/admin/audit/entry/add/").status_code == 403
    assert Entry.objects.filter(pk=entry.pk).exists()


# -- the page and its download --------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/audit/", "/audit/export/"])
def test_anonymous_visitors_are_sent_to_the_login_page(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("url", ["/audit/", "/audit/export/"])
def test_operators_who_are_not_staff_are_refused(client, alice, url):
    client.force_login(alice)
    assert client.get(url).status_code == 403
    assert not entries(action="exported")


def test_staff_read_the_log_filtered(staff_client, alice):
    record(action="sign_in_failed", actor_label="mallory")
    record(action="created", actor=alice, target_type="team", target_label="Billing")
    page = staff_client.get("/audit/", {"action": "sign_in_failed"}).content.decode()
    assert "mallory" in page
    assert "Billing" not in page
    page = staff_client.get("/audit/", {"actor": "alice"}).content.decode()
    assert "Billing" in page
    assert "mallory" not in page


def test_the_page_goes_back_in_time_page_by_page(staff_client):
    for n in range(55):
        record(action="created", target_type="team", target_label=f"Team {n:02d}")
    first = staff_client.get("/audit/", {"kind": "team"}).content.decode()
    assert "Team 54" in first
    assert "Team 04" not in first
    oldest_shown = Entry.objects.filter(target="Team 05").get().pk
    second = staff_client.get("/audit/", {"kind": "team", "before": oldest_shown}).content.decode()
    assert "Team 04" in second
    assert "Team 05" not in second


def test_a_bad_filter_is_a_clear_400(staff_client):
    response = staff_client.get("/audit/", {"since": "2026-05-02", "until": "2026-05-01"})
    assert response.status_code == 400
    assert "must not be after" in response.content.decode()


def test_the_csv_download_escapes_cells_and_is_itself_recorded(staff_client):
    record(action="sign_in_failed", actor_label='=HYPERLINK("http://evil.example","x")')
    response = staff_client.get("/audit/export/", {"action": "sign_in_failed"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:3] == ["When (UTC)", "Action", "Operator"]
    assert rows[1][2] == '\'=HYPERLINK("http://evil.example","x")'
    (export,) = entries(action="exported")
    assert (export.actor, export.target_type) == ("admin", "audit log")
