"""The recovery loop: paid orders whose Celery message went missing are fulfilled from the
database within seconds (ADR 0013)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Order, OrderDelivery, OrderStatus
from orders.services import recover_paid_orders

from .factories import add_keys, buy, make_product, pay


def _paid_seconds_ago(order, seconds):
    Order.objects.filter(pk=order.pk).update(status_changed_at=timezone.now() - timedelta(seconds=seconds))


def _paid_order(keys=1):
    product = make_product()
    add_keys(product, keys)
    order = buy(product)
    pay(order)
    return order


@pytest.mark.django_db
def test_a_paid_order_whose_message_was_lost_is_fulfilled_after_the_grace_period(settings):
    settings.ORDER_RECOVERY_GRACE_SECONDS = 10
    order = _paid_order()
    _paid_seconds_ago(order, 11)

    assert recover_paid_orders() == 1

    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED
    assert OrderDelivery.objects.filter(order=order).count() == 1


@pytest.mark.django_db
def test_an_order_paid_within_the_grace_period_is_left_to_its_task(settings):
    settings.ORDER_RECOVERY_GRACE_SECONDS = 10
    order = _paid_order()
    _paid_seconds_ago(order, 5)

    assert recover_paid_orders() == 0

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


@pytest.mark.django_db
def test_running_recovery_twice_delivers_once(settings):
    settings.ORDER_RECOVERY_GRACE_SECONDS = 0
    order = _paid_order(keys=3)
    _paid_seconds_ago(order, 1)

    recover_paid_orders()
    recover_paid_orders()

    assert OrderDelivery.objects.filter(order=order).count() == 1
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED


@pytest.mark.django_db
def test_an_order_held_for_risk_review_is_not_driven(settings):
    settings.ORDER_RECOVERY_GRACE_SECONDS = 0
    order = _paid_order()
    Order.objects.filter(pk=order.pk).update(attribution={"risk": "review"})
    _paid_seconds_ago(order, 60)

    assert recover_paid_orders() == 0

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


@pytest.mark.django_db(transaction=True)
def test_an_order_a_worker_is_fulfilling_now_is_skipped_not_waited_for(settings):
    # given a paid order whose row a worker holds locked (mid-fulfilment, or a stuck worker)
    settings.ORDER_RECOVERY_GRACE_SECONDS = 0
    held, free = _paid_order(), _paid_order()
    _paid_seconds_ago(held, 30)
    _paid_seconds_ago(free, 30)
    locked, release = threading.Event(), threading.Event()

    def worker():
        with transaction.atomic():
            Order.objects.select_for_update().get(pk=held.pk)
            locked.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    locked.wait(5)
    try:
        # when the recovery loop runs
        driven = recover_paid_orders()
    finally:
        release.set()
        thread.join()

    # then it fulfilled the free one and did not block on the held one
    assert driven == 1
    assert Order.objects.get(pk=free.pk).status == OrderStatus.COMPLETED
    assert Order.objects.get(pk=held.pk).status == OrderStatus.PAID


@pytest.mark.django_db
def test_the_recovery_query_is_one_range_scan_of_the_status_age_index(settings):
    with CaptureQueriesContext(connection) as queries:
        assert recover_paid_orders() == 0
    (select,) = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the tables are tiny in tests
        cursor.execute("EXPLAIN " + select)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "order_status_age_idx" in plan
