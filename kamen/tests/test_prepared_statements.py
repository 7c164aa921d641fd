"""kamen.db.execute_prepared: prepared once per session, and robust to sessions that lost or
already have the statement (a reconnect, a failed EXECUTE after its PREPARE)."""

import pytest
from django.db import connection

from kamen.db import execute_prepared

SQL = "SELECT %(a)s::int + %(b)s::int, %(a)s::int"


def _prepared_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'kamen_test_%%'")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
def test_a_statement_is_prepared_once_and_named_parameters_are_reused():
    assert execute_prepared(SQL, {"a": 2, "b": 3}, prefix="kamen_test") == [(5, 2)]
    assert execute_prepared(SQL, {"a": 10, "b": 1}, prefix="kamen_test") == [(11, 10)]
    assert len(_prepared_names()) == 1


@pytest.mark.django_db(transaction=True)
def test_a_session_that_lost_its_statements_prepares_again():
    execute_prepared(SQL, {"a": 1, "b": 1}, prefix="kamen_test")
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    assert execute_prepared(SQL, {"a": 4, "b": 4}, prefix="kamen_test") == [(8, 4)]


@pytest.mark.django_db(transaction=True)
def test_a_session_that_already_has_the_statement_uses_it():
    execute_prepared(SQL, {"a": 1, "b": 1}, prefix="kamen_test")
    connection._kamen_prepared[1].clear()  # as if this process had forgotten it

    assert execute_prepared(SQL, {"a": 6, "b": 1}, prefix="kamen_test") == [(7, 6)]


@pytest.mark.django_db(transaction=True)
def test_a_failed_first_execute_leaves_the_statement_known():
    with pytest.raises(Exception, match="division by zero"):
        execute_prepared("SELECT 1 / %s::int", [0], prefix="kamen_test")

    assert execute_prepared("SELECT 1 / %s::int", [1], prefix="kamen_test") == [(1,)]
