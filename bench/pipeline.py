"""pipeline_orders_per_s, pipeline_checkout_p95_ms, pipeline_p50_ms / p95: the order pipeline
end to end on PostgreSQL — checkout → signed payment callback → fulfilment (→ commission split
once it exists) — with 8 concurrent clients, each order timed from checkout to delivery."""

import statistics
import threading
import time
from decimal import Decimal

CLIENTS = 8
ORDERS_PER_CLIENT = 250


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _stock(product, count: int, run_number: int) -> None:
    from catalog.models import CardKey, CardKeyBatch
    from kamen import crypto

    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    keys = []
    for number in range(count):
        secret = f"PIPE-{run_number}-{number:07d}"
        key_id, blob = crypto.encrypt(secret)
        keys.append(
            CardKey(product=product, batch=batch, secret_ciphertext=blob, key_id=key_id, fingerprint=crypto.blind_index(secret))
        )
    CardKey.objects.bulk_create(keys, batch_size=2_000)


def _one_run(run_number: int) -> tuple[float, list[float], list[float]]:
    from django.db import connection

    from catalog.models import Category, Product, ProductType
    from orders.gateways.sandbox import SandboxGateway, signed_body
    from orders.models import Order, OrderStatus
    from orders.services import fulfil_order, place_order, record_payment_notification

    category, _ = Category.objects.get_or_create(slug="bench-pipeline", defaults={"name": "bench"})
    product = Product.objects.create(
        category=category,
        name=f"pipeline {run_number}",
        product_type=ProductType.CARD_KEY,
        retail_price=Decimal("10.00"),
        is_on_shelf=True,
        max_quantity_per_order=1,
    )
    total = CLIENTS * ORDERS_PER_CLIENT
    _stock(product, total, run_number)
    app_id = SandboxGateway().app_id
    checkout_ms: list[float] = []
    end_to_end_ms: list[float] = []
    errors: list[str] = []

    def client(index: int) -> None:
        try:
            for number in range(ORDERS_PER_CLIENT):
                started = time.perf_counter()
                order = place_order(
                    product=product, quantity=1, contact=f"c{index}-{number}@bench.test", query_password="bench-pass"
                )
                checkout_ms.append((time.perf_counter() - started) * 1000)
                body, headers = signed_body(
                    {"app_id": app_id, "event_id": f"E-{order.order_no}", "out_trade_no": order.order_no,
                     "trade_no": f"T-{order.order_no}", "amount": f"{order.total_amount:.2f}", "currency": "CNY",
                     "status": "succeeded", "paid_at": None}
                )  # fmt: skip
                record_payment_notification(gateway_code="sandbox", body=body, headers=headers)
                fulfil_order(order_id=order.pk)
                end_to_end_ms.append((time.perf_counter() - started) * 1000)
        except Exception as error:
            errors.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not errors, errors[:3]
    completed = Order.objects.filter(product=product, status=OrderStatus.COMPLETED).count()
    assert completed == total, f"{completed} of {total} completed"
    return total / elapsed, checkout_ms, end_to_end_ms


def run(repeats: int) -> dict[str, float]:
    import orders.services.enqueue as enqueue

    # Fulfilment is called directly: the figure is the work, not a queue's latency.
    original = enqueue.run_task_now_or_enqueue
    enqueue.run_task_now_or_enqueue = lambda task_name, **kwargs: None
    try:
        runs = [_one_run(number) for number in range(repeats)]
    finally:
        enqueue.run_task_now_or_enqueue = original
    rates = [rate for rate, _checkout, _e2e in runs]
    checkout = [value for _rate, values, _e2e in runs for value in values]
    end_to_end = [value for _rate, _checkout, values in runs for value in values]
    print(f"pipeline_orders_per_s runs: {[round(rate, 1) for rate in rates]}")
    return {
        "pipeline_orders_per_s": round(statistics.median(rates), 1),
        "pipeline_checkout_p95_ms": round(_percentile(checkout, 0.95), 1),
        "pipeline_p50_ms": round(_percentile(end_to_end, 0.50), 1),
        "pipeline_p95_ms": round(_percentile(end_to_end, 0.95), 1),
    }
