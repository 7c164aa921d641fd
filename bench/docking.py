"""api_orders_per_s and webhook_deliveries_per_s (issue 17 §4, docs/adr/0019).

api_orders_per_s: signed order placements over HTTP (``POST /api/v1/orders``) from CLIENTS
concurrent clients against the real-mode stack (``scripts/run.sh``: gunicorn, Celery workers —
the HTTP storm's ``start_stack``), each paid from the site's prepaid balance, counted once its
goods are delivered (order COMPLETED). The run fails if any order is not completed or the
prepaid balance differs from the top-up minus the orders.

webhook_deliveries_per_s: outbox events delivered to a local receiver (a threaded HTTP server
answering 200) by WORKERS threads calling the delivery service, as the io workers do.
"""

import itertools
import json
import os
import threading
import time
import urllib.request
from decimal import Decimal

CLIENTS = int(os.environ.get("BENCH_API_CLIENTS", "16"))
API_ORDERS = int(os.environ.get("BENCH_API_ORDERS", "400"))
WEBHOOK_EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "2000"))
WEBHOOK_WORKERS = int(os.environ.get("BENCH_WEBHOOK_WORKERS", "2"))
# Which halves to run: "webhooks,api" (both, the default), or one of them.
PARTS = set(os.environ.get("BENCH_DOCKING_PARTS", "webhooks,api").split(","))
TARGETS = {"webhook_deliveries_per_s": 500}
_sites = itertools.count()


def _site(run_number: int, prepaid: str):
    from django.contrib.auth import get_user_model

    from commissions.services.prepaid import top_up_prepaid
    from distribution.docking.models import ApiScope, DockingSite
    from distribution.docking.services import apply_for_docking, approve_docking_site, create_api_key
    from distribution.models import Distributor, DistributorStatus, Grade

    admin, _ = get_user_model().objects.get_or_create(
        username="bench-docking", defaults={"is_staff": True, "is_superuser": True}
    )
    number = next(_sites)
    grade = Grade.objects.create(
        name=f"bench dock {number}-{time.time_ns() % 10**9}", rank=500 + number, wholesale_discount_bp=9000
    )
    user = get_user_model().objects.create(username=f"bench-dock-{run_number}-{time.time_ns()}")
    distributor = Distributor.objects.create(
        user=user, grade=grade, invite_code=f"BD{time.time_ns() % 10**12}", status=DistributorStatus.ACTIVE
    )
    site = apply_for_docking(distributor=distributor, name=f"bench {run_number}", contact_email="bench@example.com")
    site = approve_docking_site(site=site, actor=admin, requests_per_minute=1_000_000)
    # A busy site staff trust: its request and order limits raised (ADR 0019's docking risk policy).
    DockingSite.objects.filter(pk=site.pk).update(requests_per_minute=1_000_000, order_limit=1_000_000)
    top_up_prepaid(distributor_id=distributor.pk, amount=prepaid, reference=f"bench-{run_number}-{time.time_ns()}")
    key, secret = create_api_key(site=site, scopes=list(ApiScope.values))
    return site, key, secret


# --- webhooks ------------------------------------------------------------------------------------
# The local receiver: its own process (as a real receiver is), a threaded HTTP/1.1 server that
# keeps connections alive and answers 200 to every POST. It prints its port, then serves.
RECEIVER = """
import http.server, sys

class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the standard library's 5 resets a burst of new connections

server = Server(("127.0.0.1", 0), Receiver)
print(server.server_port, flush=True)
server.serve_forever()
"""


def _webhooks(run_number: int) -> float:
    """WEBHOOK_EVENTS events of one site in the outbox, delivered by WEBHOOK_WORKERS threads each
    running the delivery service's batches until nothing is due (as the io workers' tasks do:
    claim a batch with SKIP LOCKED, send it over kept-alive connections, record it)."""
    import subprocess
    import sys

    from django.db import connection

    from distribution.docking.models import WebhookAttempt, WebhookEvent, WebhookStatus
    from distribution.docking.services import set_webhook
    from distribution.docking.webhooks import deliver_due_webhooks

    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        port = int(receiver.stdout.readline())
        site, _key, _secret = _site(run_number, "1.00")
        set_webhook(site=site, url=f"http://127.0.0.1:{port}/hooks")
        WebhookEvent.objects.bulk_create(
            [
                WebhookEvent(
                    event_id=f"evt_bench_{run_number}_{n}", site=site, kind="order.delivered", payload={"id": n}
                )
                for n in range(WEBHOOK_EVENTS)
            ]
        )
        connection.close()

        def worker():
            try:
                while deliver_due_webhooks(limit=100):
                    pass
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(WEBHOOK_WORKERS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        receiver.kill()
        receiver.wait()
    delivered = WebhookEvent.objects.filter(site=site, status=WebhookStatus.DELIVERED).count()
    assert delivered == WEBHOOK_EVENTS, f"only {delivered} of {WEBHOOK_EVENTS} webhooks delivered"
    logged = WebhookAttempt.objects.filter(event__site=site, status_code=200).count()
    assert logged == WEBHOOK_EVENTS, f"{logged} delivery-log rows for {WEBHOOK_EVENTS} deliveries"
    load = os.getloadavg()
    rate = delivered / elapsed
    print(f"  webhooks run {run_number}: {rate:.1f} deliveries/s (load {load[0]:.2f} / {load[1]:.2f})")
    return rate


# --- API orders ----------------------------------------------------------------------------------
def _stock(product, count: int, run_number: int) -> None:
    from catalog.models import CardKey, CardKeyBatch
    from kamen import crypto

    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    secrets = [f"API-{run_number}-{time.time_ns()}-{n:07d}" for n in range(count)]
    key_id, blobs = crypto.encrypt_many(secrets)
    fingerprints = crypto.blind_index_many(secrets)
    CardKey.objects.bulk_create(
        [
            CardKey(product=product, batch=batch, secret_ciphertext=b, key_id=key_id, fingerprint=f)
            for b, f in zip(blobs, fingerprints, strict=True)
        ],
        batch_size=2_000,
    )


def _place(base_url: str, key_id: str, secret: str, product_id: int, numbers: list[str], failures: list) -> None:
    from kamen import api_signing

    for number in numbers:
        body = json.dumps({"product_id": product_id, "quantity": 1, "client_order_no": number}).encode()
        url = base_url + "/api/v1/orders"
        headers = api_signing.signed_headers(key_id=key_id, secret=secret, method="POST", url=url, body=body)
        headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                if response.status not in (200, 201):
                    failures.append(response.status)
        except Exception as error:  # noqa: BLE001 — counted and reported
            failures.append(
                (
                    getattr(error, "code", error.__class__.__name__),
                    (error.read()[:300] if hasattr(error, "read") else b""),
                )
            )


def _api_orders(run_number: int, stack) -> float:
    from django.db import connection

    from bench.support import card_key_product
    from commissions.services.prepaid import prepaid_balance
    from orders.api.models import DockingOrder
    from orders.models import Order, OrderStatus

    product = card_key_product(f"bench api {run_number} {time.time_ns()}", max_quantity_per_order=10, is_on_shelf=True)
    _stock(product, API_ORDERS, run_number)
    site, key, secret = _site(run_number, "1000000.00")
    connection.close()
    per_client = [[f"B{run_number}-{c}-{n}" for n in range(API_ORDERS // CLIENTS)] for c in range(CLIENTS)]
    failures: list = []
    threads = [
        threading.Thread(target=_place, args=(stack.base_url, key.key_id, secret, product.pk, numbers, failures))
        for numbers in per_client
    ]
    from bench.http_storm import CpuMeter

    meter = CpuMeter(root_pid=stack.process.pid, database=connection.settings_dict["NAME"])
    meter.start()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    placing = time.perf_counter() - started
    placed = sum(len(numbers) for numbers in per_client)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        done = Order.objects.filter(docking__site=site, status=OrderStatus.COMPLETED).count()
        if done >= placed:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    used = meter.stop()
    load = os.getloadavg()
    per_order = {role: seconds * 1000 / max(placed, 1) for role, seconds in sorted(used.items()) if seconds}
    cpu = ", ".join(f"{role} {ms:.1f} ms" for role, ms in per_order.items())
    print(
        f"  api run {run_number}: {placed / elapsed:.1f} orders/s delivered ({placed / placing:.1f}/s placed over HTTP)"
        f" (load {load[0]:.2f} / {load[1]:.2f}); CPU per order: {cpu}"
    )
    assert not failures, f"{len(failures)} placements failed: {failures[:5]}"
    if done != placed:
        from django.db.models import Count

        from riskcontrol.models import RiskEvent

        statuses = dict(
            Order.objects.filter(docking__site=site).values_list("status").annotate(n=Count("id")).order_by()
        )
        rules = dict(RiskEvent.objects.values_list("rule").annotate(n=Count("id")).order_by())
        raise AssertionError(f"only {done} of {placed} API orders delivered: {statuses}; risk events {rules}")
    total = sum(Order.objects.filter(docking__site=site).values_list("total_amount", flat=True), Decimal("0"))
    assert prepaid_balance(site.distributor_id) == Decimal("1000000.00") - total
    assert DockingOrder.objects.filter(site=site).count() == placed
    return done / elapsed


def run(repeats: int) -> dict[str, float]:
    import statistics

    from django.conf import settings
    from django.db import connection

    figures = {}
    if "webhooks" in PARTS:
        figures["webhook_deliveries_per_s"] = round(statistics.median(_webhooks(n) for n in range(repeats)), 1)
        print(f"webhook_deliveries_per_s: {figures['webhook_deliveries_per_s']}")
    if "api" not in PARTS:
        return figures
    if not settings.REDIS_URL:
        print("api_orders_per_s omitted: it needs REDIS_URL (the real mode's Celery broker)")
        return figures
    from bench.http_storm import _empty_celery_queues, _stack_redis_url, start_stack

    redis_url = _stack_redis_url()
    _empty_celery_queues(redis_url)
    connection.close()
    stack = start_stack(
        database_settings=connection.settings_dict, redis_url=redis_url, sandbox_secret=settings.SANDBOX_GATEWAY_SECRET
    )
    try:
        rates = [_api_orders(n, stack) for n in range(repeats)]
    finally:
        stack.stop()
    figures["api_orders_per_s"] = round(statistics.median(rates), 1)
    print(f"api_orders_per_s: {figures['api_orders_per_s']} (runs: {[round(r, 1) for r in rates]})")
    return figures
