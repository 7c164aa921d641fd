from django.db import migrations

# PostgreSQL keeps the journal honest whatever the code above it does:
# - UPDATE and DELETE on journal transactions and entries are refused (append-only; a
#   correction is a reversing transaction);
# - a deferred constraint trigger checks, at COMMIT, that each journal transaction an inserted
#   entry belongs to has debits equal to credits (and at least two entries).
FORWARD = """
CREATE OR REPLACE FUNCTION commissions_forbid_journal_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER commissions_journaltransaction_append_only
    BEFORE UPDATE OR DELETE ON commissions_journaltransaction
    FOR EACH ROW EXECUTE FUNCTION commissions_forbid_journal_change();
CREATE TRIGGER commissions_journalentry_append_only
    BEFORE UPDATE OR DELETE ON commissions_journalentry
    FOR EACH ROW EXECUTE FUNCTION commissions_forbid_journal_change();

CREATE OR REPLACE FUNCTION commissions_check_journal_balanced() RETURNS trigger AS $$
DECLARE
    debits numeric;
    credits numeric;
    lines integer;
BEGIN
    SELECT COALESCE(SUM(CASE WHEN side = 'debit' THEN amount ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN side = 'credit' THEN amount ELSE 0 END), 0),
           COUNT(*)
      INTO debits, credits, lines
      FROM commissions_journalentry WHERE transaction_id = NEW.transaction_id;
    IF debits <> credits OR lines < 2 THEN
        RAISE EXCEPTION 'journal transaction % is unbalanced: debits % credits % (% entries)',
            NEW.transaction_id, debits, credits, lines;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE CONSTRAINT TRIGGER commissions_journalentry_balanced
    AFTER INSERT ON commissions_journalentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION commissions_check_journal_balanced();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS commissions_journalentry_balanced ON commissions_journalentry;
DROP FUNCTION IF EXISTS commissions_check_journal_balanced();
DROP TRIGGER IF EXISTS commissions_journalentry_append_only ON commissions_journalentry;
DROP TRIGGER IF EXISTS commissions_journaltransaction_append_only ON commissions_journaltransaction;
DROP FUNCTION IF EXISTS commissions_forbid_journal_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("commissions", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
