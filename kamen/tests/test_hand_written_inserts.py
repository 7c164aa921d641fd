"""The pipeline's hand-written INSERTs (ADR 0008) name every column the database needs.

A field added later with only a Python default (no database default) and NOT NULL would make
such an INSERT fail at run time; this names the statement and the missing column instead."""

import importlib
import re
from pathlib import Path

import pytest
from django.apps import apps
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
# Services that still write an INSERT in place, and the apps' sql.py modules whose statements
# are composed with psycopg.sql (read rendered, so the table names are the real ones).
SOURCES = [
    "orders/services/state.py",
    "orders/services/payments.py",
    "orders/services/fulfilment.py",
    "commissions/services/ledger.py",
    "distribution/services/sales.py",
]
SQL_MODULES = ["orders.sql", "catalog.sql", "distribution.sql", "commissions.sql", "riskcontrol.sql"]
INSERT = re.compile(r'INSERT INTO\s+"?(\w+)"?(?:\s+AS\s+\w+)?\s*\(([^)]*)\)', re.IGNORECASE)


def _required_columns(table: str) -> set[str]:
    model = next(m for m in apps.get_models() if m._meta.db_table == table)
    return {
        field.column
        for field in model._meta.concrete_fields
        if not field.primary_key and not field.null and not field.has_db_default()
    }


def _texts():
    for source in SOURCES:
        yield source, (ROOT / source).read_text()
    for name in SQL_MODULES:
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if isinstance(value, sql.Composable):
                value = value.as_string(None)
            if isinstance(value, str) and "INSERT INTO" in value.upper():
                yield f"{name}.{attribute}", value


def _statements():
    for source, text in _texts():
        for match in INSERT.finditer(text):
            table = match.group(1)
            if not any(m._meta.db_table == table for m in apps.get_models()):
                continue  # a table name still in a placeholder of a service's own text
            columns = {column.strip().strip('"') for column in match.group(2).split(",") if column.strip()}
            yield source, table, columns


def test_the_sources_hold_the_statements_this_checks():
    assert len(list(_statements())) >= 12


@pytest.mark.parametrize(("source", "table", "columns"), list(_statements()))
def test_every_not_null_column_without_a_database_default_is_written(source, table, columns):
    missing = _required_columns(table) - columns
    assert not missing, f"{source}: INSERT INTO {table} leaves out {sorted(missing)}"


def test_the_risk_signal_insert_names_every_required_column():
    from riskcontrol.services.assessment import _SIGNAL_COLUMNS

    assert not _required_columns("riskcontrol_risksignal") - set(_SIGNAL_COLUMNS)
