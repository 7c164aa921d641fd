"""Behind PgBouncer in transaction mode (issue 15 §4, docs/adr/0015-beyond-one-machine.md):
each transaction may run on another server connection, so what must keep one session (the
periodic jobs' advisory lock) goes to DATABASE_DIRECT_URL. A private pgbouncer (Debian's
package, never the system service) with one server connection in front of the test database;
the job runs in a process of its own configured as docker compose configures web and workers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from bench.pgbouncer import INSTALL_HINT, pgbouncer_binary, start_pgbouncer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(pgbouncer_binary() is None, reason=INSTALL_HINT),
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pooler():
    database = connection.settings_dict
    pooler = start_pgbouncer(
        server_host=database["HOST"] or "127.0.0.1", server_port=int(database["PORT"] or 5432),
        user=database["USER"], pool_size=1,
    )  # fmt: skip
    yield pooler
    pooler.stop()


def _probe(environment: dict) -> dict:
    database = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if not key.startswith("DATABASE_")}
    env.pop("TEST_DATABASE_NAME", None)
    env |= {"DJANGO_SETTINGS_MODULE": "kamen.settings.test"} | environment
    if database.get("PASSWORD"):
        env["PGPASSWORD"] = database["PASSWORD"]
    done = subprocess.run(
        [sys.executable, "-m", "kamen.tests.pooled_job_probe"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _direct_url() -> str:
    database = connection.settings_dict
    return (
        f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"
    )


def test_a_periodic_job_never_overlaps_itself_behind_the_pooler(pooler):
    pooled = pooler.url(user=connection.settings_dict["USER"], name=connection.settings_dict["NAME"])

    probe = _probe({"DATABASE_URL": pooled, "DATABASE_POOLED": "1", "DATABASE_DIRECT_URL": _direct_url()})

    assert probe == {"first": "done", "second": None, "after": "done", "runs": ["first", "MainThread"]}


def test_without_the_direct_connection_the_session_lock_is_no_lock(pooler):
    """Why DATABASE_POOLED needs DATABASE_DIRECT_URL: the lock taken through the pooler stays on
    the one server connection, and the second run, given that connection, takes it again."""
    pooled = pooler.url(user=connection.settings_dict["USER"], name=connection.settings_dict["NAME"])

    probe = _probe({"DATABASE_URL": pooled})

    assert probe["second"] == "done" and probe["runs"] == ["first", "MainThread", "MainThread"]


def test_pooled_settings_refuse_to_start_without_a_direct_url():
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_DIRECT_URL"}
    env |= {"DJANGO_SETTINGS_MODULE": "kamen.settings.test", "DATABASE_POOLED": "1"}

    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip

    assert done.returncode != 0 and "DATABASE_DIRECT_URL" in done.stderr
