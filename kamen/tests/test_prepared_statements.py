"""kamen.db: the driver (psycopg 3) prepares a repeated statement once per connection and sends
a batch of statements in one round trip (its pipeline mode); what the pipeline relies on."""

import pytest
from django.db import connection

from kamen.db import fetch_rows, fetch_rows_in_one_round_trip

SQL = "SELECT %(a)s::int + %(b)s::int, %(a)s::int"


def _prepared(text: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{text}%"])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_a_repeated_statement_is_prepared_once_per_connection_and_named_parameters_are_reused():
    runs = [fetch_rows(SQL, {"a": number, "b": 1}) for number in range(6)]

    assert runs[5] == [(6, 5)]
    assert _prepared("$1::int + $2::int, $1::int") == 1


@pytest.mark.django_db
def test_with_preparing_switched_off_nothing_is_prepared(monkeypatch):
    """KAMEN_DB_PREPARE=0, for a transaction-mode pooler that cannot carry prepared statements."""
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    for number in range(6):
        assert fetch_rows("SELECT %s::int * 7", [number]) == [(number * 7,)]

    assert _prepared("$1::int * 7") == 0


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_lost_its_statements_prepares_again():
    for _ in range(4):
        fetch_rows(SQL, {"a": 1, "b": 1})
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    assert fetch_rows(SQL, {"a": 4, "b": 4}) == [(8, 4)]
    assert fetch_rows(SQL, {"a": 5, "b": 4}) == [(9, 5)]


@pytest.mark.django_db(transaction=True)
def test_a_failed_execution_leaves_the_statement_usable():
    with pytest.raises(Exception, match="division by zero"):
        fetch_rows("SELECT 1 / %s::int", [0])

    assert [fetch_rows("SELECT 1 / %s::int", [1]) for _ in range(4)][-1] == [(1,)]


@pytest.mark.django_db
def test_a_prepared_insert_raises_django_errors_and_reads_back_what_the_orm_reads():
    """Its errors must arrive as Django's (checkout redraws an order number on IntegrityError), and rows read back through
    ``instance_from_row`` must equal the ORM's (JSON decoded, Decimal money, aware times)."""
    from django.db import IntegrityError, transaction
    from psycopg import sql as psycopg_sql

    from kamen.db import insert_instance, instance_from_row, select_list
    from orders.models import Order
    from orders.tests.factories import make_product

    product = make_product()
    first = Order.objects.create(
        order_no="K-DUP-1", product=product, product_name="p", product_type=product.product_type, quantity=1,
        unit_price="10.00", total_amount="10.00", contact="a@example.com", contact_kind="email",
        query_password_hash="x", attribution={"chain": [1, 2], "note": "中文"}, expires_at="2030-01-01T00:00:00Z",
    )  # fmt: skip
    twin = Order(**{field.attname: getattr(first, field.attname) for field in Order._meta.concrete_fields})
    twin.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_instance(twin)
    statement = psycopg_sql.SQL("SELECT {columns} FROM orders_order o WHERE o.id = %s").format(
        columns=psycopg_sql.SQL(select_list(Order, "o"))
    )
    rows = fetch_rows(statement, [first.pk])
    read = instance_from_row(Order, rows[0])
    orm = Order.objects.get(pk=first.pk)
    assert {f.attname: getattr(read, f.attname) for f in Order._meta.concrete_fields} == {
        f.attname: getattr(orm, f.attname) for f in Order._meta.concrete_fields
    }
    assert read.attribution == {"chain": [1, 2], "note": "中文"} and not read._state.adding


# --- fetch_rows_in_one_round_trip: several statements, one round trip ------------------------


@pytest.mark.django_db
def test_a_batch_runs_its_statements_in_order_and_returns_the_last_rows():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE kamen_batch_probe (n int)")
    statements = [
        ("INSERT INTO kamen_batch_probe (n) VALUES (%s)", [1]),
        ("UPDATE kamen_batch_probe SET n = n + %(step)s", {"step": 10}),
        ("SELECT n FROM kamen_batch_probe ORDER BY n", []),
    ]

    assert fetch_rows_in_one_round_trip(statements) == [(11,)]
    assert fetch_rows_in_one_round_trip(statements) == [(11,), (21,)]


@pytest.mark.django_db(transaction=True)
def test_a_failing_statement_of_a_batch_outside_a_transaction_undoes_the_whole_batch():
    """The batch is one implicit transaction: the insert before the failure does not stay,
    and the failure arrives as Django's error."""
    from django.db import DataError

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE kamen_batch_probe (n int)")
    try:
        with pytest.raises(DataError, match="division by zero"):
            fetch_rows_in_one_round_trip(
                [("INSERT INTO kamen_batch_probe (n) VALUES (%s)", [1]), ("SELECT 1 / %s::int", [0])]
            )
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM kamen_batch_probe")
            assert cursor.fetchone() == (0,)
        assert fetch_rows_in_one_round_trip([("SELECT 1 / %s::int", [1])]) == [(1,)]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE kamen_batch_probe")


@pytest.mark.django_db(transaction=True)
def test_a_failing_batch_inside_a_transaction_aborts_it_and_the_next_one_runs():
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError), transaction.atomic():
        fetch_rows_in_one_round_trip([("SELECT %s::int", [1]), ("SELECT 1 / %s::int", [0])])
    with transaction.atomic():
        assert fetch_rows_in_one_round_trip([("SELECT %s::int * 5", [1])]) == [(5,)]


@pytest.mark.django_db(transaction=True)
def test_a_statement_after_a_lock_in_the_same_message_sees_what_the_lock_waited_for():
    """The replay check of a payment callback: the lock, then a read in the same round trip. The
    read must see the row the lock's holder committed while this round trip waited."""
    import threading

    import psycopg

    from kamen.db import fetch_rows_in_one_round_trip

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE kamen_batch_lock (id int PRIMARY KEY)")
        cursor.execute("CREATE TABLE kamen_batch_seen (id int)")
        cursor.execute("INSERT INTO kamen_batch_lock VALUES (1)")
    settings = connection.settings_dict
    holder = psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"],
        password=settings["PASSWORD"],
    )  # fmt: skip
    locked = threading.Event()

    def hold_then_commit():
        with holder.cursor() as cursor:
            cursor.execute("SELECT 1 FROM kamen_batch_lock WHERE id = 1 FOR UPDATE")
            cursor.execute("INSERT INTO kamen_batch_seen VALUES (1)")
            locked.set()
            threading.Event().wait(0.5)
        holder.commit()

    thread = threading.Thread(target=hold_then_commit)
    thread.start()
    try:
        locked.wait(5)
        rows = fetch_rows_in_one_round_trip(
            [
                ("SELECT 1 FROM kamen_batch_lock WHERE id = %s FOR UPDATE", [1]),
                ("SELECT count(*) FROM kamen_batch_seen WHERE id = %s", [1]),
            ]
        )
        assert rows == [(1,)]
    finally:
        thread.join()
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE kamen_batch_lock, kamen_batch_seen")


POOLED = {"DATABASE_POOLED": "1", "DATABASE_DIRECT_URL": "postgres://postgres@127.0.0.1/direct"}


@pytest.mark.parametrize(
    ("environment", "threshold"),
    [
        ({}, 2),
        ({"KAMEN_DB_PREPARE": "0"}, None),
        (POOLED, None),
        (POOLED | {"KAMEN_DB_PREPARE": "1"}, 2),
    ],
)
def test_preparing_is_off_behind_a_transaction_pooler_unless_asked_for(environment, threshold):
    """KAMEN_DB_PREPARE=0, or DATABASE_POOLED without it: nothing is left prepared in a server
    session that another client may get next."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key not in {"KAMEN_DB_PREPARE", "DATABASE_POOLED"}}
    env |= {"DATABASE_URL": "postgres://postgres@127.0.0.1/kamen", **environment}
    code = "from kamen.settings import base; print(base.DATABASES['default']['OPTIONS'])"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert f"'prepare_threshold': {threshold}" in result.stdout
    assert "'server_side_binding': True" in result.stdout
