"""The inbox benchmark still runs: a tiny load through the real loader, every page measured.

The full run (``python -m bench.inbox``) needs PostgreSQL and minutes; this proves in seconds, on
whatever database the suite uses, that the generated rows still fit the models and that every
measured page answers, at a query count that does not grow with the data.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench import dataset
from bench.inbox import Pages, steady_queries
from customers.models import Customer
from inbox.models import Conversation, Message


def _queries(pages: dict[str, Any]) -> dict[str, int]:
    return {
        f"{name}.{how}": steady_queries(numbers)
        for name, page in pages.items()
        for how, numbers in page.items()
        if isinstance(numbers, dict)
    }


@pytest.mark.django_db
def test_loader_writes_the_requested_scale_with_every_customer_in_a_conversation() -> None:
    report = dataset.load(customers=50, messages=400)

    assert report.messages == Message.objects.count() == 400
    assert Customer.objects.count() == 50
    assert Conversation.objects.values("customer").distinct().count() == 50
    assert dataset.is_loaded(customers=50, messages=400)
    # At most one conversation per customer is not resolved (the model's constraint held).
    assert Conversation.objects.exclude(status="resolved").values("customer").distinct().count() == (
        Conversation.objects.exclude(status="resolved").count()
    )


@pytest.mark.django_db
def test_every_page_answers_at_a_query_count_that_does_not_grow_with_the_data() -> None:
    dataset.load(customers=60, messages=500)
    pages = Pages(samples=2)  # the same operator, cursors, threads and profiles before and after
    # One untimed call first, as the bench does: a process fills its caches (the labels' colours) on
    # its first request, a query the next ones do not make.
    small = pages.run(warmup=1)

    dataset.load(customers=150, messages=1500, seed=2)
    large = pages.run(warmup=1)

    assert {"inbox_all", "inbox_all_deep", "inbox_mine", "thread", "profile"} <= set(large)
    assert all(numbers["p50_ms"] > 0 for numbers in [large["thread"]["view"], large["inbox_all"]["view"]])
    assert _queries(large) == _queries(small)
