"""The database itself refuses to change audit entries (and, on PostgreSQL, to delete them).

Django's own paths are closed in audit.models; this closes raw SQL and any other client of the
database that is not its owner dropping the trigger. TRUNCATE (a deliberate purge by whoever runs
the database, and the test suite's flush) is not affected. SQLite gets the UPDATE guard only: its
flush deletes rows one statement at a time, as a purge would.
"""

from __future__ import annotations

from django.db import migrations

POSTGRESQL = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: entries are never changed or deleted';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
"""
POSTGRESQL_REVERSE = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry;
DROP FUNCTION IF EXISTS audit_entry_append_only();
"""
SQLITE = """
CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_entry
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: entries are never changed or deleted');
END;
"""
SQLITE_REVERSE = "DROP TRIGGER IF EXISTS audit_entry_append_only;"


def guard(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE)


def unguard(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_REVERSE)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_REVERSE)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(guard, unguard)]
