"""First run: fill the rollups for the history already there.

Small installations (up to FILL_LIMIT messages: well under a minute) are filled here. Bigger ones
are left to ``manage.py reports rebuild`` (it is chunked and safe while the worker runs; the
migration would hold the deploy for minutes) — the message below says so. This migration calls the
live rebuild code on purpose: the rollups must be what that code computes; it runs once.
"""

from __future__ import annotations

from django.db import migrations

FILL_LIMIT = 200_000


def fill(apps, schema_editor):
    Message = apps.get_model("inbox", "Message")
    count = Message.objects.count()
    if not count:
        return
    if count > FILL_LIMIT:
        print(
            f"\n  reports: {count:,} messages; fill the report rollups with `manage.py reports rebuild` "
            "(safe while Parley runs)."
        )
        return
    from reports import rollups

    rollups.rebuild()


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("reports", "0001_initial"),
        ("inbox", "0008_merge_0007_desk_scheduled_0007_team_crm_link"),
        ("triage", "0004_import_job"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
