"""Tokens: shown once and stored hashed, revocable, refused for a deactivated operator, acting with
their operator's (or their integration's) visibility, last-used time kept at most once a minute."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from api import tokens
from api.models import ApiToken
from audit.models import Entry
from inbox.models import Operator
from tests.api.conftest import Api
from tests.conftest import PASSWORD


def test_a_token_is_stored_only_as_its_digest(alice):
    issued = tokens.issue_operator_token(name="script", operator=alice, by=alice)
    row = ApiToken.objects.get(pk=issued.token.pk)
    assert issued.text.startswith(f"parley_{row.prefix}_")
    assert row.secret_hash == tokens.digest(issued.text)
    assert issued.text.split("_", 2)[2] not in str(ApiToken.objects.filter(pk=row.pk).values().get())
    assert Entry.objects.filter(target_type="api token", target_id=str(row.pk), action="created").exists()


def test_a_token_acts_with_its_operators_visibility(api_world, as_alice, as_bob):
    assert [c["id"] for c in as_alice.get("/conversations").json()["items"]] == [api_world.conversation.pk]
    assert as_bob.get("/conversations").json()["items"] == []
    assert as_bob.get(f"/conversations/{api_world.conversation.pk}").status_code == 404
    me = as_bob.get("/me").json()
    assert me["username"] == "bob"
    assert me["scope"] == "operator"


def test_a_revoked_token_is_refused_at_once(api_world, as_alice):
    assert as_alice.get("/me").status_code == 200
    token = ApiToken.objects.get(operator=api_world.alice)
    tokens.revoke_token(token=token, by=api_world.alice)
    assert as_alice.get("/me").status_code == 401


def test_a_deactivated_operators_tokens_stop_working(api_world, as_alice):
    Operator.objects.filter(pk=api_world.alice.pk).update(is_active=False)
    assert as_alice.get("/me").status_code == 401


def test_another_operators_token_cannot_be_revoked_by_an_operator(api_world):
    token = ApiToken.objects.get(operator=api_world.alice)
    with pytest.raises(tokens.PermissionDenied):
        tokens.revoke_token(token=token, by=api_world.bob)


def test_last_used_is_written_at_most_once_a_minute(api_world, as_alice):
    token = ApiToken.objects.get(operator=api_world.alice)
    assert token.last_used_at is None
    as_alice.get("/me")
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    as_alice.get("/me")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    tokens.forget_recent()  # two minutes on, the few seconds' cache of the token has long expired
    as_alice.get("/me")
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first - timedelta(minutes=1)


def test_a_team_integration_token_sees_its_team_and_acts_as_its_own_account(api_world):
    issued = tokens.issue_integration_token(name="Shop sync", team=api_world.support, by=api_world.admin)
    account = issued.token.operator
    assert list(account.teams.all()) == [api_world.support]
    assert not account.has_usable_password()
    assert account.capacity == 0
    client = Api(issued.text)
    me = client.get("/me").json()
    assert me["scope"] == "integration"
    assert me["team_ids"] == [api_world.support.pk]
    assert [c["id"] for c in client.get("/conversations").json()["items"]] == [api_world.conversation.pk]
    note = client.post(
        f"/conversations/{api_world.conversation.pk}/messages", {"type": "note", "text": "from the shop"}
    )
    assert note.status_code == 201
    assert note.json()["author_id"] == account.pk
    # It cannot sign in.
    assert not Client().login(username=account.username, password="")


def test_an_integration_of_another_team_sees_nothing_of_team_a(api_world):
    issued = tokens.issue_integration_token(name="CRM", team=api_world.sales, by=api_world.admin)
    client = Api(issued.text)
    assert client.get("/conversations").json()["items"] == []
    assert client.get(f"/customers/{api_world.customer.pk}").status_code == 404


def test_only_staff_make_integration_tokens(api_world):
    with pytest.raises(tokens.PermissionDenied):
        tokens.issue_integration_token(name="CRM", team=api_world.support, by=api_world.alice)


def test_an_operator_makes_sees_once_and_revokes_their_own_token_on_the_settings_page(api_world):
    browser = Client()
    browser.login(username="alice", password=PASSWORD)
    made = browser.post("/api/tokens/", {"name": "My scripts"})
    assert made.status_code == 201
    text = made.context["issued"].text
    assert text in made.content.decode()
    assert Api(text).get("/me").json()["username"] == "alice"
    listed = browser.get("/api/tokens/").content.decode()
    assert "My scripts" in listed
    assert text not in listed  # shown once
    token = ApiToken.objects.get(name="My scripts")
    assert browser.post(f"/api/tokens/{token.pk}/revoke/").status_code == 302
    assert Api(text).get("/me").status_code == 401


def test_the_settings_page_refuses_to_revoke_someone_elses_token(api_world):
    browser = Client()
    browser.login(username="bob", password=PASSWORD)
    token = ApiToken.objects.get(operator=api_world.alice)
    assert browser.post(f"/api/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


def test_staff_make_an_integration_token_in_the_admin_and_see_it_once(api_world):
    browser = Client()
    browser.force_login(api_world.admin)
    response = browser.post(
        "/admin/api/apitoken/add/", {"name": "Billing", "team": api_world.support.pk, "operator": ""}, follow=True
    )
    assert response.status_code == 200
    shown = [str(m) for m in get_messages(response.wsgi_request)] or [response.content.decode()]
    token = ApiToken.objects.get(name="Billing")
    assert token.team == api_world.support
    page = response.content.decode()
    assert f"parley_{token.prefix}_" in page
    text = page.split(f"parley_{token.prefix}_", 1)[1][:43]
    assert Api(f"parley_{token.prefix}_{text}").get("/me").json()["scope"] == "integration"
    assert shown


def test_the_admin_refuses_a_token_for_both_an_operator_and_a_team(api_world):
    browser = Client()
    browser.force_login(api_world.admin)
    response = browser.post(
        "/admin/api/apitoken/add/", {"name": "Both", "team": api_world.support.pk, "operator": api_world.alice.pk}
    )
    assert response.status_code == 200
    assert not ApiToken.objects.filter(name="Both").exists()


def test_a_token_in_use_stops_working_at_once_when_its_operator_is_deactivated(api_world, as_alice):
    # The first request leaves the token in this process's cache of recent tokens (api/tokens.py).
    assert as_alice.get("/me").status_code == 200
    api_world.alice.is_active = False
    api_world.alice.save(update_fields=["is_active"])
    assert as_alice.get("/me").status_code == 401


def test_a_token_in_use_loses_a_team_at_once_when_its_operator_leaves_it(api_world, as_alice):
    path = f"/conversations/{api_world.conversation.pk}"
    assert as_alice.get(path).status_code == 200  # the token and Alice's teams are now cached
    api_world.alice.teams.remove(api_world.support)
    assert as_alice.get(path).status_code == 404
