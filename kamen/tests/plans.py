"""What plan PostgreSQL runs for a statement the driver prepares (``kamen.db``): the statement
and its values captured where a service runs it, then prepared again under a name of ours and
explained."""

import contextlib
import re
from unittest import mock

from django.db import connection
from psycopg import sql

_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s|%s")


def numbered(sql: str, params) -> tuple[str, list]:
    """``sql`` with ``$n`` placeholders as psycopg sends it (a name keeps the number of its first
    use), and the values in that order."""
    names: list[str] = []
    values: list = []

    def number(match: re.Match) -> str:
        if match.group(0) == "%%":
            return "%"
        name = match.group(1)
        if name is None:
            values.append(params[len(values)])
            return f"${len(values)}"
        if name not in names:
            names.append(name)
            values.append(params[name])
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(number, sql), values


@contextlib.contextmanager
def statements_run_by(module):
    """The ``(sql, params)`` that ``module`` hands to ``kamen.db.fetch_rows`` meanwhile."""
    captured: list[tuple] = []
    original = module.fetch_rows

    def spy(sql, params):
        captured.append((sql, params))
        return original(sql, params)

    with mock.patch.object(module, "fetch_rows", spy):
        yield captured


def explain(statement: str, params, *, options: str = "", generic: bool = False) -> list[tuple]:
    """EXPLAIN of the prepared statement run with these values: its first, custom plan, or with
    ``generic`` the plan it settles on after a few runs. ANALYZE in ``options`` runs it."""
    text, values = numbered(statement, params)
    with connection.cursor() as cursor:
        if generic:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE kamen_plan_probe AS {text}")
        try:
            # The values as literals: parameters of EXPLAIN EXECUTE get no type from the statement.
            arguments = sql.SQL(" ({})").format(sql.SQL(", ").join(map(sql.Literal, values))) if values else sql.SQL("")
            cursor.execute(sql.SQL("EXPLAIN {options} EXECUTE kamen_plan_probe{arguments}").format(
                options=sql.SQL(options), arguments=arguments
            ))  # fmt: skip
            return cursor.fetchall()
        finally:
            cursor.execute("DEALLOCATE kamen_plan_probe")
