# Full-text search of messages (inbox.search) on PostgreSQL: a GIN index over the same expression
# the search filters on, built concurrently (config/migrations.py) so messages keep arriving while
# it is built. Nothing on SQLite, which searches with LIKE. Not in Message.Meta.indexes: see
# AddPostgresIndexOnline.

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations

from common.schema import AddPostgresIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('inbox', '0004_saved_replies'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                AddPostgresIndexOnline(
                    model_name='message',
                    index=django.contrib.postgres.indexes.GinIndex(
                        django.contrib.postgres.search.SearchVector('text', config='simple'),
                        name='msg_text_search',
                    ),
                ),
            ],
            state_operations=[],
        ),
    ]
