"""`make run` on a fresh machine: SQLite, no Redis. Every migration and the whole demo (with
its real sales through the pipeline) must work there, not only on PostgreSQL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_migrate_and_demo_data_work_in_the_embedded_sqlite_mode(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "KAMEN_ENCRYPTION_KEYS", "KAMEN_BLIND_INDEX_KEY", "TEST_DATABASE_NAME"}
    }
    env |= {"DJANGO_SETTINGS_MODULE": "kamen.settings.base", "KAMEN_VAR_DIR": str(tmp_path)}

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )

    migrated = manage("migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    first = manage("load_demo_data")
    second = manage("load_demo_data")

    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Kamen demo is ready" in second.stdout
    assert (tmp_path / "kamen.sqlite3").exists()
