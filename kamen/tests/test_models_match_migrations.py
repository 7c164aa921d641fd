"""The models and the migrations describe the same schema: a model changed without its migration
(or a shared field helper of ``kamen.models`` that drifted from what the apps wrote by hand)
fails here, not on the next developer's ``makemigrations``."""

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_is_missing_its_migration():
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exit_:  # --check exits non-zero when a migration would be written
        pytest.fail(f"models and migrations differ (exit {exit_.code}):\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()
