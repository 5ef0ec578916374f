"""On PostgreSQL, a trigger refuses UPDATE and DELETE on the audit trail."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION orders_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'orders_orderpaymentevent is append-only (%% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS orders_event_append_only ON orders_orderpaymentevent;
CREATE TRIGGER orders_event_append_only
    BEFORE UPDATE OR DELETE ON orders_orderpaymentevent
    FOR EACH ROW EXECUTE FUNCTION orders_event_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS orders_event_append_only ON orders_orderpaymentevent;
DROP FUNCTION IF EXISTS orders_event_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
