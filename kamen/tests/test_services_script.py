"""scripts/services.py create-database: a first real-mode make run on a server without the
database named in DATABASE_URL creates it, instead of a psycopg traceback from migrate."""

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "services.py"


def _run(database_url):
    env = os.environ | {"DATABASE_URL": database_url}
    command = [sys.executable, SCRIPT, "create-database"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def _server_url(name):
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}"))


def test_a_missing_database_is_created_and_an_existing_one_left_alone():
    name = f"kamen_created_{uuid.uuid4().hex[:8]}"
    try:
        first = _run(_server_url(name))
        second = _run(_server_url(name))

        assert first.returncode == 0, first.stderr
        assert f"Created the database {name}." in first.stdout
        psycopg.connect(_server_url(name), connect_timeout=5).close()
        assert second.returncode == 0 and second.stdout == ""
    finally:
        connection = psycopg.connect(_server_url("postgres"), connect_timeout=5)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.close()


def test_no_server_is_a_clear_message():
    result = _run("postgres://postgres@127.0.0.1:1/kamen")

    assert result.returncode == 1
    assert "PostgreSQL does not answer at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr
