"""Ids in query strings beyond any id column (issue 12, item 11): a 400 that says what is wrong, never a 500.

SQLite cannot even be asked about a 20-digit number (OverflowError), PostgreSQL answers nothing; the
forms refuse such ids before any query, on both.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

HUGE = "9" * 20


@pytest.fixture
def operator_client(client, alice):
    client.raise_request_exception = False
    client.force_login(alice)
    return client


@pytest.fixture
def admin_client(client, admin):
    client.raise_request_exception = False
    client.force_login(admin)
    return client


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"/?team={HUGE}", "No such team."),
        (f"/?channel={HUGE}", "No such channel."),
        (f"/more/?team={HUGE}", "No such team."),
        (f"/more/?channel={HUGE}", "No such channel."),
        ("/?team=abc", "No such team."),
        ("/?team=-1", "No such team."),
    ],
)
def test_the_inbox_filters_refuse_an_impossible_id_with_a_400(operator_client, url, message):
    response = operator_client.get(url)
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        f"/reports/?team={HUGE}",
        f"/customers/?after={HUGE}",
        f"/audit/?before={HUGE}",
        f"/audit/export/?before={HUGE}",
        f"/kb/?channel={HUGE}",
    ],
)
def test_other_id_taking_query_strings_refuse_it_too(admin_client, url):
    assert admin_client.get(url).status_code == 400


@pytest.mark.parametrize("url", [f"/c/{HUGE}/", f"/customers/{HUGE}/", f"/kb/articles/{HUGE}/"])
def test_an_impossible_id_in_a_path_is_a_404(admin_client, url):
    assert admin_client.get(url).status_code == 404


def test_a_conversation_with_an_impossible_filter_id_is_a_400(operator_client, alice, customer, sms):
    from django.utils import timezone

    from inbox.models import Conversation

    conversation = Conversation.objects.create(customer=customer, team=sms.team, last_message_at=timezone.now())
    assert operator_client.get(f"/c/{conversation.pk}/?team={HUGE}").status_code == 400


@pytest.mark.parametrize(
    "url", [f"/more/?cursor=1700000000000000.{HUGE}", f"/search/?q=parcel&before=1700000000000000.{HUGE}"]
)
def test_a_page_cursor_with_an_impossible_id_is_never_a_500(operator_client, url):
    assert operator_client.get(url).status_code in {200, 400}


def test_older_messages_with_an_impossible_cursor_is_never_a_500(operator_client, customer, sms):
    from django.utils import timezone

    from inbox.models import Conversation

    conversation = Conversation.objects.create(customer=customer, team=sms.team, last_message_at=timezone.now())
    response = operator_client.get(f"/c/{conversation.pk}/older/", {"before": f"1700000000000000.{HUGE}"})
    assert response.status_code in {200, 400}
