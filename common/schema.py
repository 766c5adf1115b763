"""Migration operations that keep a large production table writable while they run.

``AddIndexOnline`` builds an index with PostgreSQL's ``CREATE INDEX CONCURRENTLY``: messages keep
arriving while an index on millions of rows is built (a plain ``CREATE INDEX`` locks the table
against writes until it is done). Elsewhere (the embedded SQLite) it is a plain ``AddIndex``. A
migration using it sets ``atomic = False``. If a concurrent build fails, PostgreSQL leaves an
invalid index behind: drop it (``DROP INDEX CONCURRENTLY name``) and migrate again.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db.migrations.operations import AddIndex


class AddIndexOnline(AddIndexConcurrently):
    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AddPostgresIndexOnline(AddIndexOnline):
    """An index only PostgreSQL can build (GIN over ``to_tsvector``...): concurrently there, nothing
    elsewhere. Use it inside ``SeparateDatabaseAndState(database_operations=[...])`` and keep the
    index out of the model's ``Meta.indexes``: SQLite rebuilds a table with every index of its
    ``Meta`` when a later migration alters it, and would fail on this one.
    """

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
