"""pipeline_orders_per_s, pipeline_checkout_p50_ms / p95, pipeline_p50_ms / p95: the order
pipeline end to end on PostgreSQL — checkout → signed payment callback → fulfilment with the
commission split of a three-level distributor chain, then the delivery e-mail (locmem backend:
the message is built, not sent over SMTP) — with CLIENTS concurrent clients, each order timed
from checkout to delivery.

Fair by construction: each client is its own OS process (no shared GIL) with its own
connection, kept open across its orders (CONN_MAX_AGE semantics: one connect per client, not
per order); every order arrives through a referral link so the split really runs; the rate
counts only orders that ended COMPLETED, and the run fails if any card key was delivered twice,
any order is not completed, or an order's commissions were written more than once. Password
hashing uses Django's default (production) hashers, not the test settings' MD5. The clients
start warm, as long-running workers are (``_warm_up``). The load average is printed beside each
run: on a shared machine compare figures only under like load.
"""

import multiprocessing
import os
import statistics
import time
from decimal import Decimal

CLIENTS = int(os.environ.get("BENCH_PIPELINE_CLIENTS", "8"))
ORDERS_PER_CLIENT = int(os.environ.get("BENCH_PIPELINE_ORDERS_PER_CLIENT", "250"))
TARGETS = {"pipeline_orders_per_s": 100}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _stock(product, count: int, run_number) -> None:
    from catalog.models import CardKey, CardKeyBatch
    from kamen import crypto

    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    secrets = [f"PIPE-{run_number}-{number:07d}" for number in range(count)]
    key_id, blobs = crypto.encrypt_many(secrets)
    fingerprints = crypto.blind_index_many(secrets)
    CardKey.objects.bulk_create(
        [
            CardKey(product=product, batch=batch, secret_ciphertext=blob, key_id=key_id, fingerprint=fingerprint)
            for blob, fingerprint in zip(blobs, fingerprints, strict=True)
        ],
        batch_size=2_000,
    )


def _referral_link(run_number: int) -> str:
    """A seller two levels below the top of a chain, with a link: every order splits three ways."""
    from django.contrib.auth import get_user_model

    from distribution.models import DistributionSettings, Distributor, DistributorStatus, Grade
    from distribution.services.referrals import create_referral_link

    DistributionSettings.objects.get_or_create(pk=1)
    grade = Grade.objects.create(
        name=f"bench {run_number}",
        rank=90 + run_number,
        commission_level1_bp=1000,
        commission_level2_bp=500,
        commission_level3_bp=200,
    )
    parent = None
    for depth in range(3):
        user = get_user_model().objects.create(username=f"bench-pipe-{run_number}-{depth}")
        parent = Distributor.objects.create(
            user=user, parent=parent, grade=grade, invite_code=f"BP{run_number}{depth}", status=DistributorStatus.ACTIVE
        )
    return create_referral_link(distributor=parent, channel="wechat").code


def _warm_up(category, run_number: int) -> None:
    """One order through the whole pipeline in the parent, on a product of its own, before the
    clients fork: they then start as a worker that has served before (URLconf, templates and
    translations loaded; the URLconf alone is ~0.15 s of CPU per process), not as a fresh
    interpreter. Each client still connects and prepares its statements itself."""
    from catalog.models import Product, ProductType
    from orders.gateways.sandbox import SandboxGateway
    from orders.models import OrderStatus
    from orders.services import fulfil_order, place_order, record_payment_notification

    product = Product.objects.create(
        category=category, name=f"pipeline warm-up {run_number}", product_type=ProductType.CARD_KEY,
        retail_price=Decimal("10.00"), cost_price=Decimal("6.00"), is_on_shelf=True, max_quantity_per_order=1,
    )  # fmt: skip
    _stock(product, 1, f"warm-{run_number}")
    # Not through the clients' link: its seller's day total is exactly at the risk rule's limit.
    order = place_order(product=product, quantity=1, contact="warm@bench.test", query_password="bench-pass")  # noqa: S106
    body, headers = sandbox_payment(order, SandboxGateway().app_id)
    record_payment_notification(gateway_code="sandbox", body=body, headers=headers)
    assert fulfil_order(order_id=order.pk).status == OrderStatus.COMPLETED


def sandbox_payment(order, app_id: str) -> tuple[bytes, dict]:
    """The sandbox gateway's signed "paid" notification for ``order``, as the gateway sends it."""
    from orders.gateways.sandbox import signed_body

    return signed_body(
        {"app_id": app_id, "event_id": f"E-{order.order_no}", "out_trade_no": order.order_no,
         "trade_no": f"T-{order.order_no}", "amount": f"{order.total_amount:.2f}", "currency": "CNY",
         "status": "succeeded", "paid_at": None}
    )  # fmt: skip


def _client(index: int, product_id: int, link_code: str, start, results) -> None:
    """One buyer after another, in this process, on this process's own connection."""
    from django.db import connection

    from catalog.models import Product
    from orders.gateways.sandbox import SandboxGateway
    from orders.services import fulfil_order, place_order, record_payment_notification

    checkout_ms: list[float] = []
    end_to_end_ms: list[float] = []
    error = ""
    cpu = (0.0, 0.0)
    try:
        product = Product.objects.get(pk=product_id)
        app_id = SandboxGateway().app_id
        referral = {"code": link_code, "channel": "wechat"}
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        start.wait()
        started_cpu = (time.process_time(), _backend_cpu_seconds(backend))
        for number in range(ORDERS_PER_CLIENT):
            started = time.perf_counter()
            order = place_order(
                product=product,
                quantity=1,
                contact=f"c{index}-{number}@bench.test",
                query_password="bench-pass",  # noqa: S106
                referral=referral,
            )
            checkout_ms.append((time.perf_counter() - started) * 1000)
            body, headers = sandbox_payment(order, app_id)
            record_payment_notification(gateway_code="sandbox", body=body, headers=headers)
            fulfil_order(order_id=order.pk)  # with its after-commit work: the delivery e-mail
            end_to_end_ms.append((time.perf_counter() - started) * 1000)
        cpu = (time.process_time() - started_cpu[0], _backend_cpu_seconds(backend) - started_cpu[1])
    except Exception as failure:  # reported by the parent
        error = repr(failure)
    finally:
        connection.close()
    results.put((checkout_ms, end_to_end_ms, error, cpu))


def _backend_cpu_seconds(pid: int) -> float:
    """CPU time of this client's PostgreSQL backend; 0 when the server is not on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vacuum_analyze() -> None:
    """What autovacuum does on a real server between two runs: the CI server runs with
    autovacuum off, so without this each run read the dead row versions every earlier run left
    (the merchant accounts and counters every order updates: 41 rows in 354 pages after three
    runs) and was planned without statistics. The backends' CPU per order then rose run after
    run (22 → 37 → 52 ms) and measured the missing housekeeping, not the pipeline. Not before
    the first run: its tables are fresh, and analysed while empty they told the planner they
    stay empty (autovacuum analyses a table only once it has changed)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def _one_run(run_number: int) -> tuple[float, list[float], list[float]]:
    from django.db import connections
    from django.db.models import Count

    from catalog.models import Category, Product, ProductType
    from commissions.models import Commission
    from orders.models import DeliveryKind, Order, OrderDelivery, OrderStatus

    if run_number:
        _vacuum_analyze()
    category, _ = Category.objects.get_or_create(slug="bench-pipeline", defaults={"name": "bench"})
    product = Product.objects.create(
        category=category,
        name=f"pipeline {run_number}",
        product_type=ProductType.CARD_KEY,
        retail_price=Decimal("10.00"),
        cost_price=Decimal("6.00"),
        is_on_shelf=True,
        max_quantity_per_order=1,
    )
    total = CLIENTS * ORDERS_PER_CLIENT
    _stock(product, total, run_number)
    link_code = _referral_link(run_number)
    _warm_up(category, run_number)
    connections.close_all()  # no connection crosses the fork: each client opens its own
    context = multiprocessing.get_context("fork")
    start = context.Barrier(CLIENTS + 1)
    results = context.Queue()
    processes = [
        context.Process(target=_client, args=(index, product.pk, link_code, start, results)) for index in range(CLIENTS)
    ]
    for process in processes:
        process.start()
    start.wait()
    started = time.perf_counter()
    collected = [results.get() for _process in processes]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
    errors = [error for _checkout, _e2e, error, _cpu in collected if error]
    assert not errors, errors[:3]

    completed = Order.objects.filter(product=product, status=OrderStatus.COMPLETED).count()
    assert completed == total, f"{completed} of {total} completed"
    deliveries = OrderDelivery.objects.filter(product=product, kind=DeliveryKind.CARD_KEY, is_voided=False)
    assert deliveries.count() == total, f"{deliveries.count()} deliveries for {total} orders"
    twice = deliveries.values("card_key_id").annotate(times=Count("id")).filter(times__gt=1).count()
    assert twice == 0, f"{twice} card keys delivered more than once"
    split = Commission.objects.filter(order__product=product).values("order_id", "level", "kind")
    assert split.annotate(times=Count("id")).filter(times__gt=1).count() == 0, "a commission written twice"
    assert split.values("order_id").distinct().count() == total, "an order without its commission split"
    checkout_ms = [value for values, _e2e, _error, _cpu in collected for value in values]
    end_to_end_ms = [value for _checkout, values, _error, _cpu in collected for value in values]
    from riskcontrol.models import ReviewCase, RiskEvent

    fired = RiskEvent.objects.filter(order_no__in=Order.objects.filter(product=product).values("order_no"))
    rules = dict(fired.order_by().values_list("rule").annotate(times=Count("id")).values_list("rule", "times"))
    reviewed = ReviewCase.objects.filter(order__product=product).count()
    load = os.getloadavg()
    clients_cpu = sum(cpu[0] for *_rest, cpu in collected) * 1000 / total
    backends_cpu = sum(cpu[1] for *_rest, cpu in collected) * 1000 / total
    print(
        f"  pipeline run {run_number}: {completed / elapsed:.1f} orders/s (load {load[0]:.2f} / {load[1]:.2f}); "
        f"CPU per order: clients {clients_cpu:.2f} ms, their PostgreSQL backends {backends_cpu:.2f} ms; "
        f"risk rules fired {rules or 'none'}, {reviewed} orders held for review"
    )
    return completed / elapsed, checkout_ms, end_to_end_ms


def run(repeats: int) -> dict[str, float]:
    from django.conf import global_settings
    from django.test import override_settings

    import orders.services.enqueue as enqueue

    # Fulfilment is called directly by each client: the figure is the work, not a queue's
    # latency. The "queue" accepts the tasks and runs none of them.
    original = enqueue.run_task_now_or_enqueue
    enqueue.run_task_now_or_enqueue = lambda task_name, **kwargs: True
    try:
        # The password hashers production runs (the test settings' MD5 would hide their cost).
        with override_settings(PASSWORD_HASHERS=global_settings.PASSWORD_HASHERS):
            runs = [_one_run(number) for number in range(repeats)]
    finally:
        enqueue.run_task_now_or_enqueue = original
    rates = [rate for rate, _checkout, _e2e in runs]
    checkout = [value for _rate, values, _e2e in runs for value in values]
    end_to_end = [value for _rate, _checkout, values in runs for value in values]
    print(
        f"pipeline_orders_per_s runs ({CLIENTS} client processes × {ORDERS_PER_CLIENT} orders): "
        f"{[round(rate, 1) for rate in rates]}"
    )
    return {
        "pipeline_orders_per_s": round(statistics.median(rates), 1),
        "pipeline_checkout_p50_ms": round(_percentile(checkout, 0.50), 1),
        "pipeline_checkout_p95_ms": round(_percentile(checkout, 0.95), 1),
        "pipeline_p50_ms": round(_percentile(end_to_end, 0.50), 1),
        "pipeline_p95_ms": round(_percentile(end_to_end, 0.95), 1),
    }
