"""A token revoked in one process is refused by another (a real Daphne) within half a second, though
that process keeps the tokens it checked for a few seconds."""

from __future__ import annotations

import time

import httpx
import pytest

from api import tokens
from tests.conftest import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_a_token_revoked_elsewhere_is_refused_by_a_web_process_that_had_just_checked_it(stack, alice):
    issued = tokens.issue_operator_token(name="shop sync", operator=alice, by=alice)
    headers = {"Authorization": f"Bearer {issued.text}"}
    me = f"{stack.base_url}/api/v1/me"
    assert httpx.get(me, headers=headers, timeout=20).status_code == 200  # now kept by the web process
    assert httpx.get(me, headers=headers, timeout=20).status_code == 200
    tokens.revoke_token(token=issued.token, by=alice)  # in this process, not the web process
    revoked_at = time.monotonic()
    wait_for(lambda: httpx.get(me, headers=headers, timeout=20).status_code == 401, timeout=10, interval=0.05)
    # Well within the cache's 5 s (which would end about 4.5 s from here): the web process followed
    # the generation number in Redis (a quarter of a second; the rest is slack for a loaded machine).
    assert time.monotonic() - revoked_at < 2.5
