"""Raw SQL for the order pipeline's hot statements, and whole rows without the ORM.

Preparing is the driver's: psycopg 3 binds parameters server-side and prepares a statement once
it ran ``prepare_threshold`` times on a connection (``DATABASES["default"]["OPTIONS"]``, set from
``KAMEN_DB_PREPARE``), so a claim or a reservation is planned once per connection, not on every
call (planning cost about as much as running it). Batching is the driver's too: statements
whose results nobody waits for go in one round trip through psycopg's pipeline mode.
docs/adr/0017 has the measurements.
"""

import functools
import re

from django.db import DEFAULT_DB_ALIAS, connection, connections
from psycopg import sql

__all__ = [
    "fetch_rows",
    "fetch_rows_in_one_round_trip",
    "insert_instance",
    "insert_select_sql",
    "insert_select_values",
    "insert_statement",
    "inserted",
    "instance_from_row",
    "instances_from_arrays",
    "prefetched",
    "select_arrays",
    "select_list",
]


def fetch_rows(sql, params) -> list[tuple]:
    """Run one statement (``%(name)s`` or ``%s`` placeholders; a ``str`` or a composed
    ``psycopg.sql`` statement) and return all its rows (none for a statement that returns none)."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


def fetch_rows_in_one_round_trip(statements, *, rows_of: int = -1) -> list[tuple]:
    """Run ``(sql, params)`` statements in order in one round trip (psycopg's pipeline mode)
    and return the rows of the last one (``rows_of``: of the one at that index).

    Why: under load each round trip costs a context switch on both sides, and the pipeline's
    writes whose results nobody reads (a counter, an attempt row, a lock) need not wait for
    each other. In READ COMMITTED each statement still takes its own snapshot, so a statement
    after a lock sees what the lock waited for. Outside a transaction they are one implicit
    transaction: an error in any of them undoes them all.
    """
    statements = list(statements)
    wanted = rows_of % len(statements)
    wrapper = connections[DEFAULT_DB_ALIAS]
    with wrapper.cursor() as cursor, wrapper.cursor() as kept:
        with wrapper.wrap_database_errors, wrapper.connection.pipeline():
            for index, (sql, params) in enumerate(statements):
                (kept if index == wanted else cursor).execute(sql, params)
        return kept.fetchall() if kept.description is not None else []


# --- Whole rows without the ORM's query building (the pipeline's hot reads and writes) -------
# Django builds every query anew: for the order pipeline's ~30 statements that is about half
# of its Python time. These read and write a model's concrete fields with fixed SQL (cached
# per model) and turn rows into instances the way the ORM does (``from_db`` and the fields'
# converters), so callers get ordinary model instances.


@functools.cache
def _row_shape(model) -> tuple[tuple[str, ...], tuple]:
    """(column names, per-field converter lists) of ``model``'s concrete fields."""
    fields = model._meta.concrete_fields
    columns = tuple(field.column for field in fields)
    converters = []
    for field in fields:
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        converters.append((column, tuple(found)))
    return columns, tuple(converters)


@functools.cache
def select_list(model, alias: str) -> str:
    """``"alias"."col", …`` for every concrete field of ``model``, in field order."""
    columns, _converters = _row_shape(model)
    return sql.SQL(", ").join(sql.Identifier(alias, column) for column in columns).as_string()


def select_arrays(model, alias: str, order: tuple[str, ...] = ("id",)) -> str:
    """``array_agg("alias"."col" ORDER BY …), …`` for every concrete field of ``model``, in field
    order: a model's related rows in one column each, for ``instances_from_arrays``. ``order``
    names columns of ``alias``, or of another table as ``"other.column"``."""
    columns, _converters = _row_shape(model)
    by = sql.SQL(", ").join(
        sql.Identifier(*name.split(".")) if "." in name else sql.Identifier(alias, name) for name in order
    )
    return (
        sql.SQL(", ")
        .join(
            sql.SQL("array_agg({column} ORDER BY {by})").format(column=sql.Identifier(alias, column), by=by)
            for column in columns
        )
        .as_string()
    )


def instances_from_arrays(model, row, start: int = 0) -> list:
    """The ``model`` instances whose fields ``select_arrays`` aggregated into ``row[start:]``
    (an aggregate over no rows is NULL: no instances). A LEFT JOINed row that was not there
    (its primary key NULL) is None."""
    width = len(model._meta.concrete_fields)
    columns = [values or [] for values in row[start : start + width]]
    rows = zip(*columns, strict=True)
    return [instance_from_row(model, values) if values[0] is not None else None for values in rows]


def prefetched(instance, name: str, related: list) -> None:
    """``instance.<name>.all()`` answers ``related`` without a query, as ``prefetch_related``
    leaves it."""
    queryset = getattr(instance, name).all()
    queryset._result_cache = related
    queryset._prefetch_done = True
    instance.__dict__.setdefault("_prefetched_objects_cache", {})[name] = queryset


def instance_from_row(model, row, start: int = 0):
    """The ``model`` instance whose concrete fields are ``row[start:]`` (as ``select_list``
    selected them), converted as the ORM converts them (JSON decoded, and so on)."""
    columns, converters = _row_shape(model)
    values = list(row[start : start + len(columns)])
    wrapper = connections[DEFAULT_DB_ALIAS]  # not the ``connection`` proxy: a look-up per use
    for index, (column, functions) in enumerate(converters):
        for function in functions:
            values[index] = function(values[index], column, wrapper)
    return model.from_db(DEFAULT_DB_ALIAS, None, values)


def _writable(model) -> tuple:
    return tuple(field for field in model._meta.concrete_fields if not field.primary_key)


@functools.cache
def _insert_sql(model) -> tuple[str, tuple]:
    fields = _writable(model)
    statement = sql.SQL("INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING {pk}").format(
        table=sql.Identifier(model._meta.db_table),
        columns=sql.SQL(", ").join(sql.Identifier(field.column) for field in fields),
        values=sql.SQL(", ").join(sql.Placeholder() for _field in fields),
        pk=sql.Identifier(model._meta.pk.column),
    )
    return statement.as_string(), fields


@functools.cache
def insert_select_sql(model) -> tuple[str, tuple]:
    """``INSERT INTO <table> (<columns>) SELECT CAST(%(<model>_<column>)s AS <type>), …`` and
    the fields it writes: the start of a statement that inserts ``model``'s row only when the
    caller's ``FROM … WHERE`` that follows holds. Values from ``insert_select_values``."""
    fields = _writable(model)
    name = model._meta.model_name
    # The type without its length or precision: CAST(… AS varchar(120)) would cut a longer value
    # silently, where the column itself refuses it ("value too long"), as a plain INSERT does.
    casts = sql.SQL(", ").join(
        sql.SQL("CAST({value} AS {type})").format(
            value=sql.Placeholder(f"{name}_{field.column}"),
            type=sql.SQL(_TYPE_MODIFIERS.sub("", field.db_type(connection))),
        )
        for field in fields
    )
    statement = sql.SQL("INSERT INTO {table} ({columns}) SELECT {casts}").format(
        table=sql.Identifier(model._meta.db_table),
        columns=sql.SQL(", ").join(sql.Identifier(field.column) for field in fields),
        casts=casts,
    )
    return statement.as_string(), fields


_TYPE_MODIFIERS = re.compile(r"\([^)]*\)")


def insert_select_values(instance) -> dict:
    """The parameters of ``insert_select_sql`` for ``instance``, after the ``pre_save`` signal
    (hand the new key to ``inserted``)."""
    _sql, fields = insert_select_sql(type(instance))
    name = type(instance)._meta.model_name
    values = _values_to_insert(instance, fields)
    return {f"{name}_{field.column}": value for field, value in zip(fields, values, strict=True)}


def insert_instance(instance):
    """Insert ``instance`` with one fixed statement and set its primary key, with the
    ``pre_save`` / ``post_save`` signals ``save()`` would send (PostgreSQL only)."""
    ((pk,),) = fetch_rows(*insert_statement(instance))
    return inserted(instance, pk)


def insert_statement(instance) -> tuple[str, list]:
    """``instance``'s INSERT (returning its primary key) as ``(sql, values)`` for
    ``fetch_rows_in_one_round_trip``, after the ``pre_save`` signal; hand the key to ``inserted``."""
    sql, fields = _insert_sql(type(instance))
    return sql, _values_to_insert(instance, fields)


def _values_to_insert(instance, fields) -> list:
    """``instance``'s values for ``fields`` as ``save()`` writes them, after its ``pre_save``."""
    from django.db.models.signals import pre_save

    pre_save.send(sender=type(instance), instance=instance, raw=False, using=DEFAULT_DB_ALIAS, update_fields=None)
    wrapper = connections[DEFAULT_DB_ALIAS]  # not the ``connection`` proxy: a look-up per field
    return [field.get_db_prep_save(field.pre_save(instance, True), wrapper) for field in fields]


def inserted(instance, pk):
    """``instance`` saved under ``pk``, with the ``post_save`` signal ``save()`` would send."""
    from django.db.models.signals import post_save

    instance.pk = pk
    instance._state.adding = False
    instance._state.db = DEFAULT_DB_ALIAS
    post_save.send(
        sender=type(instance), instance=instance, created=True, update_fields=None, raw=False, using=DEFAULT_DB_ALIAS
    )
    return instance
