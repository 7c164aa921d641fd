"""Server-side prepared statements for the few hot statements of the order pipeline.

Why: a claim, a reservation or the risk check is one statement that PostgreSQL plans anew on
every call, and planning cost about as much as running it (a claim: ~0.25 ms to plan, ~0.15 ms
to run). ``execute_prepared`` prepares a statement once per database session and then only
sends ``EXECUTE name(values)``. A session that lost its statements (a reconnect behind our
back) prepares again. The statements keep their Django ``%(name)s`` / ``%s`` placeholders, so
the same SQL text runs unprepared elsewhere.

``KAMEN_DB_PREPARE = False`` sends the same statements unprepared: behind a pooler in
transaction mode (PgBouncer), a ``PREPARE`` stays on whichever server connection ran it, and
the next transaction may get another one (docs/adr/0015-beyond-one-machine.md).
"""

import functools
import hashlib
import re
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections

__all__ = [
    "execute_prepared",
    "execute_prepared_batch",
    "insert_instance",
    "insert_select_sql",
    "insert_select_values",
    "insert_statement",
    "inserted",
    "instance_from_row",
    "select_list",
]

_NAMED = re.compile(r"%\((\w+)\)s")


@functools.lru_cache(maxsize=256)
def _translate(sql: str, named: bool) -> tuple[str, tuple[str, ...], str]:
    """(``sql`` with ``$n`` placeholders, the parameter names in ``$n`` order, statement name)."""
    if named:
        order: list[str] = []

        def number(match: re.Match) -> str:
            name = match.group(1)
            if name not in order:
                order.append(name)
            return f"${order.index(name) + 1}"

        text = _NAMED.sub(number, sql)
        names = tuple(order)
    else:
        counter = iter(range(1, sql.count("%s") + 1))
        text = re.sub(r"%s", lambda _match: f"${next(counter)}", sql)
        names = ()
    return text, names, hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


# A prepared statement keeps its generic plan for the session. One planned while a table was
# small (a new shop, an empty risk-signal table) can stay a full scan while the table grows;
# planned again after this long, it sees the table as it is (the lifetime Django gives a
# connection, CONN_MAX_AGE, is of the same order).
PLAN_MAX_AGE_SECONDS = 60.0


def _prepared_in_this_session(wrapper) -> dict[str, float]:
    """The names prepared in the current server session, with when. Kept on Django's
    connection wrapper (one per thread), and forgotten when it holds a new session."""
    wrapper.ensure_connection()
    raw = wrapper.connection
    session = (id(raw), raw.get_backend_pid())
    state = getattr(wrapper, "_kamen_prepared", None)
    if state is None or state[0] != session:
        state = (session, {})
        wrapper._kamen_prepared = state
    known = state[1]
    if getattr(wrapper, "_kamen_prepared_unsure", False) and not wrapper.needs_rollback:
        # The session lost statements we thought it had: ask it which it has, once, rather
        # than fail (and, inside a transaction, abort it) once per statement finding out.
        with wrapper.wrap_database_errors, raw.cursor() as cursor:
            cursor.execute("SELECT name FROM pg_prepared_statements")
            names = {row[0] for row in cursor.fetchall()}
        now = time.monotonic()
        for name in set(known) - names:
            del known[name]
        for name in names:
            known.setdefault(name, now)
        wrapper._kamen_prepared_unsure = False
    return known


def _forget_prepared(wrapper, known: dict) -> None:
    """The session answered "no such prepared statement": it may have lost any of them."""
    known.clear()
    wrapper._kamen_prepared_unsure = True


@functools.lru_cache(maxsize=512)
def _statement(sql: str, named: bool, prefix: str, count: int) -> tuple[str, str, str]:
    """(statement name, its EXECUTE, its PREPARE + EXECUTE) for ``sql``."""
    text, _names, digest = _translate(sql, named)
    name = f"{prefix}_{digest}"
    execute = f"EXECUTE {name} ({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}"
    return name, execute, f"PREPARE {name} AS {text}; {execute}"


def execute_prepared(sql: str, params, *, prefix: str = "kamen", _retry: bool = True) -> list[tuple]:
    """Run ``sql`` (one statement; ``%(name)s`` or ``%s`` placeholders, no literal ``%``) as a
    named prepared statement of this session and return all its rows (none for a statement
    that returns none)."""
    from psycopg2 import errors

    if not settings.KAMEN_DB_PREPARE:
        return _execute_unprepared([(sql, params)])
    named = isinstance(params, dict)
    if named:
        names = _translate(sql, True)[1]
        values = [params[name] for name in names]
    else:
        values = list(params)
    name, execute, prepare = _statement(sql, named, prefix, len(values))
    wrapper = connections[DEFAULT_DB_ALIAS]  # one look-up: each ``connection.x`` is another
    wrapper.close_if_health_check_failed()  # as Django's own cursors do (CONN_HEALTH_CHECKS)
    known = _prepared_in_this_session(wrapper)
    now = time.monotonic()
    with _cursor(wrapper) as cursor:
        if name not in known:
            try:
                cursor.execute(prepare, values)
            except DatabaseError as error:
                # PREPARE is not transactional: it stands even when the EXECUTE after it failed.
                known[name] = now
                duplicate = isinstance(error.__cause__, errors.DuplicatePreparedStatement)
                if duplicate and _retry and not wrapper.in_atomic_block:
                    return execute_prepared(sql, params, prefix=prefix, _retry=False)
                raise
            known[name] = now
            return cursor.fetchall() if cursor.description is not None else []
        stale = now - known[name] > PLAN_MAX_AGE_SECONDS
        try:
            cursor.execute(f"DEALLOCATE {name}; {prepare}" if stale else execute, values)
        except DatabaseError as error:
            if not isinstance(error.__cause__, errors.InvalidSqlStatementName):
                raise
            _forget_prepared(wrapper, known)
            if wrapper.in_atomic_block or not _retry:
                raise  # the transaction is aborted; the next call prepares again
            return execute_prepared(sql, params, prefix=prefix, _retry=False)
        if stale:
            known[name] = now
        return cursor.fetchall() if cursor.description is not None else []


def execute_prepared_batch(statements, *, _retry: bool = True) -> list[tuple]:
    """Run several ``(sql, params, prefix)`` statements as prepared statements in one message to
    the server (one round trip) and return the rows of the last one.

    Why: under load each round trip costs a context switch on both sides, and the pipeline's
    writes whose results nobody reads (a counter, an attempt row, a lock) need not wait for
    each other. They run in order; in PostgreSQL's READ COMMITTED each statement of the
    message still takes its own snapshot, so a statement after a lock sees what the lock
    waited for. Outside a transaction the message is one implicit transaction. Statements this
    session has not prepared (or prepared too long ago) are prepared first, each in a message
    of its own, so a failure never leaves it unclear which PREPAREs took effect.
    """
    from psycopg2 import errors

    statements = list(statements)
    if not settings.KAMEN_DB_PREPARE:
        return _execute_unprepared(statements)
    wrapper = connections[DEFAULT_DB_ALIAS]
    wrapper.close_if_health_check_failed()
    known = _prepared_in_this_session(wrapper)
    now = time.monotonic()
    executes: list[str] = []
    values: list = []
    with _cursor(wrapper) as cursor:
        for sql, params, prefix in statements:
            named = isinstance(params, dict)
            these = [params[name] for name in _translate(sql, True)[1]] if named else list(params)
            name, execute, _prepare = _statement(sql, named, prefix, len(these))
            at = known.get(name)
            if at is None or now - at > PLAN_MAX_AGE_SECONDS:
                _prepare_alone(wrapper, cursor, known, name, _translate(sql, named)[0], redo=at is not None, now=now)
            executes.append(execute)
            values.extend(these)
        try:
            cursor.execute("; ".join(executes), values)
        except DatabaseError as error:
            if not isinstance(error.__cause__, errors.InvalidSqlStatementName):
                raise
            _forget_prepared(wrapper, known)  # DISCARD ALL, a pooler's reset
            if wrapper.in_atomic_block or not _retry:
                raise
            return execute_prepared_batch(statements, _retry=False)
        return cursor.fetchall() if cursor.description is not None else []


@functools.lru_cache(maxsize=512)
def _unprepared(sql: str, named: bool) -> tuple[str, tuple[str, ...]]:
    """(``sql`` with ``%s`` placeholders, the parameter names in placeholder order)."""
    if not named:
        return sql, ()
    return _NAMED.sub("%s", sql), tuple(match.group(1) for match in _NAMED.finditer(sql))


def _execute_unprepared(statements) -> list[tuple]:
    """The statements as plain SQL, in one message as the prepared batch sends them; the rows
    of the last one."""
    texts: list[str] = []
    values: list = []
    for sql, params, *_prefix in statements:
        named = isinstance(params, dict)
        text, names = _unprepared(sql, named)
        texts.append(text)
        values.extend([params[name] for name in names] if named else params)
    wrapper = connections[DEFAULT_DB_ALIAS]
    wrapper.close_if_health_check_failed()
    wrapper.ensure_connection()
    with _cursor(wrapper) as cursor:
        cursor.execute("; ".join(texts), values)
        return cursor.fetchall() if cursor.description is not None else []


def _prepare_alone(wrapper, cursor, known: dict, name: str, text: str, *, redo: bool, now: float) -> None:
    from psycopg2 import errors

    try:
        cursor.execute(f"DEALLOCATE {name}; PREPARE {name} AS {text}" if redo else f"PREPARE {name} AS {text}", [])
    except DatabaseError as error:
        if redo and isinstance(error.__cause__, errors.InvalidSqlStatementName):
            _forget_prepared(wrapper, known)
            if not wrapper.in_atomic_block:
                return _prepare_alone(wrapper, cursor, known, name, text, redo=False, now=now)
        if not isinstance(error.__cause__, errors.DuplicatePreparedStatement):
            known.pop(name, None)
            raise
        known[name] = now  # the same text under the same name (a digest of it): already there
        if wrapper.in_atomic_block:
            raise  # the transaction is aborted all the same
    known[name] = now


class _PlainCursor:
    """The driver's cursor behind Django's error translation, without Django's per-call
    wrappers: used when no one logs queries (tests counting them, DEBUG) and no execute
    wrapper is installed, which is every production call. About 25 µs less per statement."""

    __slots__ = ("cursor", "wrapper")

    def __init__(self, wrapper):
        wrapper.validate_no_broken_transaction()
        wrapper.validate_thread_sharing()
        self.wrapper = wrapper
        with wrapper.wrap_database_errors:
            self.cursor = wrapper.create_cursor()

    def execute(self, sql, values):
        with self.wrapper.wrap_database_errors:
            return self.cursor.execute(sql, values)

    def fetchall(self):
        with self.wrapper.wrap_database_errors:
            return self.cursor.fetchall()

    @property
    def description(self):
        return self.cursor.description

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.cursor.close()


def _cursor(wrapper):
    if wrapper.queries_logged or wrapper.execute_wrappers:
        return wrapper.cursor()
    return _PlainCursor(wrapper)


# --- Whole rows without the ORM's query building (the pipeline's hot reads and writes) -------
# Django builds every query anew: for the order pipeline's ~30 statements that is about half
# of its Python time. These read and write a model's concrete fields with fixed SQL (cached
# per model) and turn rows into instances the way the ORM does (``from_db`` and the fields'
# converters), so callers get ordinary model instances.


@functools.cache
def _row_shape(model) -> tuple[tuple[str, ...], tuple]:
    """(quoted column names, per-field converter lists) of ``model``'s concrete fields."""
    fields = model._meta.concrete_fields
    columns = tuple(connection.ops.quote_name(field.column) for field in fields)
    converters = []
    for field in fields:
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        converters.append((column, tuple(found)))
    return columns, tuple(converters)


def select_list(model, alias: str) -> str:
    """``alias."col", …`` for every concrete field of ``model``, in field order."""
    columns, _converters = _row_shape(model)
    return ", ".join(f"{alias}.{column}" for column in columns)


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


@functools.cache
def _insert_sql(model) -> tuple[str, tuple]:
    fields = tuple(field for field in model._meta.concrete_fields if not field.primary_key)
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    pk = connection.ops.quote_name(model._meta.pk.column)
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING {pk}", fields  # noqa: S608 (model metadata)


@functools.cache
def insert_select_sql(model) -> tuple[str, tuple]:
    """``INSERT INTO <table> (<columns>) SELECT CAST(%(<model>_<column>)s AS <type>), …`` and
    the fields it writes: the start of a statement that inserts ``model``'s row only when the
    caller's ``FROM … WHERE`` that follows holds. Values from ``insert_select_values``."""
    fields = tuple(field for field in model._meta.concrete_fields if not field.primary_key)
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    name = model._meta.model_name
    # The type without its length or precision: CAST(… AS varchar(120)) would cut a longer value
    # silently, where the column itself refuses it ("value too long"), as a plain INSERT does.
    casts = ", ".join(
        f"CAST(%({name}_{field.column})s AS {_TYPE_MODIFIERS.sub('', field.db_type(connection))})" for field in fields
    )
    return f"INSERT INTO {table} ({columns}) SELECT {casts}", fields  # noqa: S608 (model metadata)


_TYPE_MODIFIERS = re.compile(r"\([^)]*\)")


def insert_select_values(instance) -> dict:
    """The parameters of ``insert_select_sql`` for ``instance``, after the ``pre_save`` signal
    (hand the new key to ``inserted``)."""
    _sql, fields = insert_select_sql(type(instance))
    name = type(instance)._meta.model_name
    values = _values_to_insert(instance, fields)
    return {f"{name}_{field.column}": value for field, value in zip(fields, values, strict=True)}


def insert_instance(instance, *, prefix: str = "insert"):
    """Insert ``instance`` as one prepared statement and set its primary key, with the
    ``pre_save`` / ``post_save`` signals ``save()`` would send (PostgreSQL only)."""
    sql, values, prefix = insert_statement(instance, prefix=prefix)
    ((pk,),) = execute_prepared(sql, values, prefix=prefix)
    return inserted(instance, pk)


def insert_statement(instance, *, prefix: str = "insert") -> tuple[str, list, str]:
    """``instance``'s INSERT (returning its primary key) as ``(sql, values, prefix)`` for
    ``execute_prepared_batch``, after the ``pre_save`` signal; hand the key to ``inserted``."""
    sql, fields = _insert_sql(type(instance))
    return sql, _values_to_insert(instance, fields), prefix


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
