"""The migrations: they match the models, and large tables are indexed without locking out writes."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db


def test_the_models_have_no_changes_the_migrations_miss():
    call_command("makemigrations", "--check", "--dry-run", stdout=io.StringIO())  # exits 1 on a missing one


@pytest.mark.django_db(transaction=True)  # CREATE INDEX CONCURRENTLY refuses to run inside a transaction
def test_report_indexes_are_built_concurrently_on_postgresql():
    out = io.StringIO()
    call_command("sqlmigrate", "inbox", "0003", stdout=out)
    sql = out.getvalue()
    assert 'CREATE INDEX CONCURRENTLY "msg_channel_period"' in sql or connection.vendor != "postgresql"
    assert 'CREATE INDEX "msg_channel_period"' in sql or connection.vendor == "postgresql"
