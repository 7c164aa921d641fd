from django.db import migrations

# The balance check of migration 0002 fires per inserted entry, so a journal transaction with
# no entries at all was never checked. A second deferred constraint trigger, on the transaction
# row itself, refuses at COMMIT any journal transaction with fewer than two entries.
FORWARD = """
CREATE OR REPLACE FUNCTION commissions_check_journal_has_entries() RETURNS trigger AS $$
DECLARE
    lines integer;
BEGIN
    SELECT COUNT(*) INTO lines FROM commissions_journalentry WHERE transaction_id = NEW.id;
    IF lines < 2 THEN
        RAISE EXCEPTION 'journal transaction % (%) has % entries: at least two are needed',
            NEW.id, NEW.reference, lines;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE CONSTRAINT TRIGGER commissions_journaltransaction_has_entries
    AFTER INSERT ON commissions_journaltransaction
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION commissions_check_journal_has_entries();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS commissions_journaltransaction_has_entries ON commissions_journaltransaction;
DROP FUNCTION IF EXISTS commissions_check_journal_has_entries();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("commissions", "0006_fewer_indexes")]
    operations = [migrations.RunPython(forward, backward)]
