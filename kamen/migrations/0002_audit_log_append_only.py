from django.db import migrations

# PostgreSQL refuses UPDATE and DELETE on the audit log: history is appended, never edited.
FORBID = """
CREATE OR REPLACE FUNCTION kamen_forbid_audit_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER kamen_auditlogentry_append_only
    BEFORE UPDATE OR DELETE ON kamen_auditlogentry
    FOR EACH ROW EXECUTE FUNCTION kamen_forbid_audit_change();
"""
ALLOW = """
DROP TRIGGER IF EXISTS kamen_auditlogentry_append_only ON kamen_auditlogentry;
DROP FUNCTION IF EXISTS kamen_forbid_audit_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORBID)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ALLOW)


class Migration(migrations.Migration):
    dependencies = [("kamen", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
