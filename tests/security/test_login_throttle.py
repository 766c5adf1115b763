"""Sign-in throttling (issue 12, item 4): failed sign-ins are limited per account and per address."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = django_settings.AXES_FAILURE_LIMIT


def sign_in(client, username, password, *, path="/login/", **headers):
    return client.post(path, {"username": username, "password": password}, **headers)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_the_right_password_after_too_many_wrong_ones_is_refused_with_a_clear_message(client, alice):
    for _ in range(LIMIT):
        sign_in(client, "alice", "wrong")
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 15 * 60
    text = response.content.decode()
    assert "Too many failed sign-in attempts" in text
    assert "15 minutes" in text
    assert not signed_in(client)


def test_a_few_wrong_passwords_do_not_lock_anybody_out(client, alice):
    for _ in range(LIMIT - 2):
        assert sign_in(client, "alice", "wrong").status_code == 200
    assert sign_in(client, "alice", PASSWORD).status_code == 302
    assert signed_in(client)


def test_the_admin_login_is_throttled_too(client, admin):
    for _ in range(LIMIT):
        sign_in(client, "admin", "wrong", path="/admin/login/")
    response = sign_in(client, "admin", PASSWORD, path="/admin/login/")
    assert response.status_code == 429
    assert not signed_in(client)


def test_one_address_trying_many_accounts_is_locked_out_but_others_are_not(client, alice):
    for n in range(LIMIT):
        sign_in(client, f"someone{n}", "guess", REMOTE_ADDR="203.0.113.7")
    assert sign_in(client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.7").status_code == 429
    assert sign_in(client, "alice", PASSWORD, REMOTE_ADDR="198.51.100.20").status_code == 302


def test_one_account_tried_from_many_addresses_is_locked_out(client, alice):
    for n in range(LIMIT):
        sign_in(client, "alice", "guess", REMOTE_ADDR=f"203.0.113.{n + 1}")
    assert sign_in(client, "alice", PASSWORD, REMOTE_ADDR="198.51.100.20").status_code == 429
    assert not signed_in(client)


def test_the_lock_out_expires(client, alice, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    for _ in range(LIMIT):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", PASSWORD).status_code == 429
    time.sleep(1.5)
    assert sign_in(client, "alice", PASSWORD).status_code == 302
    assert signed_in(client)


def test_without_a_proxy_a_forged_x_forwarded_for_does_not_escape_the_address_limit(client, alice):
    for n in range(LIMIT):
        sign_in(client, f"someone{n}", "guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{n + 1}")
    response = sign_in(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429


def test_behind_a_proxy_the_client_is_the_address_the_proxy_appended(client, alice, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    # The attacker writes its own X-Forwarded-For; the proxy appends the address it really saw.
    for n in range(LIMIT):
        sign_in(client, f"someone{n}", "guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{n + 1}, 203.0.113.9", **proxy)
    assert (
        sign_in(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.9", **proxy).status_code == 429
    )
    # Another client behind the same proxy is not locked out with it.
    assert sign_in(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.20", **proxy).status_code == 302


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_daphne_answers_a_locked_out_sign_in_with_the_429_page_too(stack, alice):
    # Under ASGI the middleware runs on its async path; the lock-out page must come out the same.
    import re

    import httpx

    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        page = http.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        form = {"username": "alice", "csrfmiddlewaretoken": token}
        for _ in range(LIMIT):
            http.post("/login/", data={**form, "password": "wrong"})
        response = http.post("/login/", data={**form, "password": PASSWORD})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == str(15 * 60)
    assert "Too many failed sign-in attempts" in response.text
