"""Where an order's CPU goes: serial attributed orders through checkout → callback → fulfilment,
with this process's CPU (``time.process_time``) and its PostgreSQL backend's CPU (from
``/proc/<pid>/stat``; the server must be on this machine) per order and per stage.

Not a benchmark (no figure, no target): the tool to judge a change to the pipeline before
``make bench`` does. ``python -m bench.profile_pipeline [orders] [--cprofile] [--statements] [--keep]``:
``--cprofile`` prints the 40 functions with the most cumulative time (with ``--self``, their own time); ``--statements`` the
statements PostgreSQL spent most time on (needs ``shared_preload_libraries =
'pg_stat_statements'``; the CPU figures then include its own small cost).
"""

import os
import sys
import time

STAGES = ("checkout", "callback", "fulfilment")


def _backend_cpu_seconds(pid: int) -> float:
    """utime + stime of a PostgreSQL backend, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(arguments: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kamen.settings.test")
    os.environ.setdefault("TEST_DATABASE_NAME", "kamen_profile")
    import django

    django.setup()
    from django.conf import global_settings
    from django.db import connection
    from django.test import override_settings
    from django.test.utils import setup_test_environment

    setup_test_environment()
    orders = int(next((argument for argument in arguments if argument.isdigit()), "400"))
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        with override_settings(PASSWORD_HASHERS=global_settings.PASSWORD_HASHERS):
            _profile(orders, with_cprofile="--cprofile" in arguments, with_statements="--statements" in arguments)
    finally:
        connection.close()
        if "--keep" in arguments:
            print(f"database {database} kept for a look (dropped by the next run)")
        else:
            connection.creation.destroy_test_db(database, verbosity=0)
    return 0


def _profile(orders: int, *, with_cprofile: bool, with_statements: bool) -> None:
    from decimal import Decimal

    from django.db import connection

    import orders.services.enqueue as enqueue
    from bench.pipeline import _referral_link, _stock, sandbox_payment
    from catalog.models import Category, Product, ProductType
    from orders.gateways.sandbox import SandboxGateway
    from orders.services import fulfil_order, place_order, record_payment_notification

    enqueue.run_task_now_or_enqueue = lambda task_name, **kwargs: True
    category = Category.objects.create(slug="profile", name="profile")
    product = Product.objects.create(
        category=category, name="profile", product_type=ProductType.CARD_KEY, retail_price=Decimal("10.00"),
        cost_price=Decimal("6.00"), is_on_shelf=True, max_quantity_per_order=1,
    )  # fmt: skip
    _stock(product, orders + 50, 0)
    referral = {"code": _referral_link(0), "channel": "wechat"}
    app_id = SandboxGateway().app_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    product = Product.objects.get(pk=product.pk)

    def one_order(number: int, totals: dict | None) -> None:
        marks = [(time.process_time(), _backend_cpu_seconds(backend))] if totals is not None else []
        order = place_order(
            product=product, quantity=1, contact=f"p{number}@bench.test", query_password="bench-pass",  # noqa: S106
            referral=referral,
        )  # fmt: skip
        if totals is not None:
            marks.append((time.process_time(), _backend_cpu_seconds(backend)))
        body, headers = sandbox_payment(order, app_id)
        record_payment_notification(gateway_code="sandbox", body=body, headers=headers)
        if totals is not None:
            marks.append((time.process_time(), _backend_cpu_seconds(backend)))
        fulfil_order(order_id=order.pk)
        if totals is not None:
            marks.append((time.process_time(), _backend_cpu_seconds(backend)))
            for stage, (before, after) in zip(STAGES, zip(marks, marks[1:], strict=False), strict=True):
                totals[stage][0] += after[0] - before[0]
                totals[stage][1] += after[1] - before[1]

    for number in range(min(50, orders)):  # warm: plans prepared, caches filled
        one_order(number, None)
    measured = orders - min(50, orders)
    if with_statements:
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            cursor.execute("SELECT pg_stat_statements_reset()")
    totals = {stage: [0.0, 0.0] for stage in STAGES}
    profiler = None
    if with_cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    for number in range(50, orders):
        one_order(number, totals)
    if profiler is not None:
        profiler.disable()
    print(f"{measured} attributed orders, serial; CPU per order in ms (Python / PostgreSQL backend):")
    for stage in STAGES:
        python, postgres = totals[stage]
        print(f"  {stage:<11} {python * 1000 / measured:6.2f}  {postgres * 1000 / measured:6.2f}")
    python = sum(values[0] for values in totals.values()) * 1000 / measured
    postgres = sum(values[1] for values in totals.values()) * 1000 / measured
    print(f"  {'total':<11} {python:6.2f}  {postgres:6.2f}")
    from riskcontrol.models import ReviewCase, RiskEvent

    events = RiskEvent.objects.order_by().values_list("rule", "action").distinct()
    print(f"  risk: {ReviewCase.objects.count()} orders put on review; rules that fired: {sorted(events)}")
    if with_statements:
        _print_statements(measured)
    if profiler is not None:
        import pstats

        pstats.Stats(profiler).sort_stats("tottime" if "--self" in sys.argv else "cumulative").print_stats(40)


def _print_statements(orders: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT calls, total_plan_time + total_exec_time, total_plan_time, rows, query
                 FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                ORDER BY 2 DESC LIMIT 40"""
        )
        rows = cursor.fetchall()
    print("\nstatements by PostgreSQL time, µs per order (plan part), calls per order, the statement:")
    for calls, total_ms, plan_ms, _rows, query in rows:
        text = " ".join(query.split())
        per_order, planning = total_ms * 1000 / orders, plan_ms * 1000 / orders
        print(f"  {per_order:7.1f} ({planning:5.1f})  {calls / orders:4.2f}  {text[:150]}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
