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


@pytest.mark.django_db
def test_a_prepared_insert_raises_django_errors_and_reads_back_what_the_orm_reads():
    """Outside a query log the driver's cursor is used: its errors must still arrive as
    Django's (checkout redraws an order number on IntegrityError), and rows read back through
    ``instance_from_row`` must equal the ORM's (JSON decoded, Decimal money, aware times)."""
    from django.db import IntegrityError, transaction

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
        insert_instance(twin, prefix="test_insert")
    rows = execute_prepared(f"SELECT {select_list(Order, 'o')} FROM orders_order o WHERE o.id = %s", [first.pk])  # noqa: S608
    read = instance_from_row(Order, rows[0])
    orm = Order.objects.get(pk=first.pk)
    assert {f.attname: getattr(read, f.attname) for f in Order._meta.concrete_fields} == {
        f.attname: getattr(orm, f.attname) for f in Order._meta.concrete_fields
    }
    assert read.attribution == {"chain": [1, 2], "note": "中文"} and not read._state.adding


@pytest.mark.django_db
def test_a_statement_planned_on_a_small_table_is_planned_again_once_old(monkeypatch):
    """Its generic plan would otherwise stay whatever suited the table when it was prepared."""
    import kamen.db as kamen_db

    clock = [1000.0]
    monkeypatch.setattr(kamen_db.time, "monotonic", lambda: clock[0])
    assert execute_prepared(SQL, {"a": 1, "b": 1}, prefix="kamen_age") == [(2, 1)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT prepare_time FROM pg_prepared_statements WHERE name LIKE 'kamen_age_%%'")
        (first,) = cursor.fetchone()
    clock[0] += kamen_db.PLAN_MAX_AGE_SECONDS / 2
    execute_prepared(SQL, {"a": 1, "b": 1}, prefix="kamen_age")
    clock[0] += kamen_db.PLAN_MAX_AGE_SECONDS
    assert execute_prepared(SQL, {"a": 2, "b": 2}, prefix="kamen_age") == [(4, 2)]

    with connection.cursor() as cursor:
        cursor.execute("SELECT prepare_time FROM pg_prepared_statements WHERE name LIKE 'kamen_age_%%'")
        (again,) = cursor.fetchone()
    assert again > first


# --- execute_prepared_batch: several statements, one round trip -------------------------------


@pytest.mark.django_db
def test_a_batch_runs_its_statements_in_order_in_one_round_trip_and_returns_the_last_rows(
    django_assert_num_queries,
):
    from kamen.db import execute_prepared_batch

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE kamen_batch_probe (n int)")
    statements = [
        ("INSERT INTO kamen_batch_probe (n) VALUES (%s)", [1], "kamen_test"),
        ("UPDATE kamen_batch_probe SET n = n + %(step)s", {"step": 10}, "kamen_test"),
        ("SELECT n FROM kamen_batch_probe ORDER BY n", [], "kamen_test"),
    ]
    before = set(_prepared_names())
    assert execute_prepared_batch(statements) == [(11,)]  # first use: each prepared alone first
    with django_assert_num_queries(1):
        assert execute_prepared_batch(statements) == [(11,), (21,)]
    assert len(set(_prepared_names()) - before) == 3


@pytest.mark.django_db(transaction=True)
def test_a_failing_statement_of_a_batch_outside_a_transaction_undoes_the_whole_batch():
    """The message is one implicit transaction: the insert before the failure does not stay."""
    from kamen.db import execute_prepared_batch

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE kamen_batch_probe (n int)")
    try:
        with pytest.raises(Exception, match="division by zero"):
            execute_prepared_batch(
                [
                    ("INSERT INTO kamen_batch_probe (n) VALUES (%s)", [1], "kamen_test"),
                    ("SELECT 1 / %s::int", [0], "kamen_test"),
                ]
            )
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM kamen_batch_probe")
            assert cursor.fetchone() == (0,)
        # and the statements stay usable
        assert execute_prepared_batch([("SELECT 1 / %s::int", [1], "kamen_test")]) == [(1,)]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE kamen_batch_probe")


@pytest.mark.django_db(transaction=True)
def test_a_batch_in_a_session_that_lost_its_statements_prepares_them_again():
    from kamen.db import execute_prepared_batch

    batch = [("SELECT %s::int", [1], "kamen_test"), ("SELECT %s::int + 1", [1], "kamen_test")]
    assert execute_prepared_batch(batch) == [(2,)]
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    assert execute_prepared_batch(batch) == [(2,)]


@pytest.mark.django_db(transaction=True)
def test_a_batch_renews_a_plan_older_than_the_limit(monkeypatch):
    import kamen.db

    batch = [("SELECT %s::int * 2", [1], "kamen_test")]
    kamen.db.execute_prepared_batch(batch)
    prepared_at = dict(connection._kamen_prepared[1])
    monkeypatch.setattr(kamen.db, "PLAN_MAX_AGE_SECONDS", -1.0)

    assert kamen.db.execute_prepared_batch(batch) == [(2,)]
    assert all(connection._kamen_prepared[1][name] > at for name, at in prepared_at.items())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lost", ["all", "one"])
def test_after_a_session_lost_statements_each_later_transaction_runs_at_once(lost):
    """Finding out costs the one transaction that ran into it; the session is then asked which
    statements it still has, so no later transaction fails for another one (lost, or kept)."""
    from django.db import DatabaseError, transaction

    from kamen.db import execute_prepared_batch

    first, second = [("SELECT %s::int * 3", [1], "kamen_test")], [("SELECT %s::int * 5", [1], "kamen_test")]
    execute_prepared_batch(first)
    execute_prepared_batch(second)
    with connection.cursor() as cursor:
        if lost == "all":
            cursor.execute("DEALLOCATE ALL")
        else:
            cursor.execute("SELECT name FROM pg_prepared_statements WHERE statement LIKE '%%* 3%%'")
            cursor.execute(f"DEALLOCATE {cursor.fetchone()[0]}")

    with pytest.raises(DatabaseError), transaction.atomic():
        execute_prepared_batch(first)
    with transaction.atomic():
        assert execute_prepared_batch(second) == [(5,)]
    with transaction.atomic():
        assert execute_prepared_batch(first) == [(3,)]


@pytest.mark.django_db(transaction=True)
def test_a_statement_after_a_lock_in_the_same_message_sees_what_the_lock_waited_for():
    """The replay check of a payment callback: the lock, then a read in the same message. The
    read must see the row the lock's holder committed while this message waited."""
    import threading

    import psycopg2

    from kamen.db import execute_prepared_batch

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE kamen_batch_lock (id int PRIMARY KEY)")
        cursor.execute("CREATE TABLE kamen_batch_seen (id int)")
        cursor.execute("INSERT INTO kamen_batch_lock VALUES (1)")
    settings = connection.settings_dict
    holder = psycopg2.connect(
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
        rows = execute_prepared_batch(
            [
                ("SELECT 1 FROM kamen_batch_lock WHERE id = %s FOR UPDATE", [1], "kamen_test"),
                ("SELECT count(*) FROM kamen_batch_seen WHERE id = %s", [1], "kamen_test"),
            ]
        )
        assert rows == [(1,)]
    finally:
        thread.join()
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE kamen_batch_lock, kamen_batch_seen")


@pytest.mark.django_db
def test_with_prepares_off_the_same_statements_run_unprepared(settings):
    """KAMEN_DB_PREPARE=0 (the default behind a transaction pooler): same answers, nothing
    left prepared in a server session another client may get next."""
    from kamen.db import execute_prepared_batch

    settings.KAMEN_DB_PREPARE = False

    assert execute_prepared(SQL, {"a": 2, "b": 3}, prefix="kamen_unprepared") == [(5, 2)]
    assert execute_prepared("SELECT %s::int * 2", [21], prefix="kamen_unprepared") == [(42,)]
    batch = [(SQL, {"a": 1, "b": 1}, "kamen_unprepared"), ("SELECT %s::int - %s::int", [9, 2], "kamen_unprepared")]
    assert execute_prepared_batch(batch) == [(7,)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'kamen_unprepared_%%'")
        assert cursor.fetchone() == (0,)
