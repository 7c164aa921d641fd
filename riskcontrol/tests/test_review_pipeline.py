"""Risk review through the real order pipeline: a held order is paid but not delivered until
risk staff approve it; a rejected one is refunded. No monkeypatching of orders' services."""

from decimal import Decimal

import pytest

from orders.models import OrderDelivery, OrderStatus
from orders.services import fulfil_order, sweep_stalled_orders
from orders.tests.factories import add_keys, buy, make_product, pay
from riskcontrol.models import ReviewCase, RiskRule, RuleCode
from orders.services.review import reject_held_order, release_held_order


@pytest.fixture
def amount_rule_reviews_above_forty(db):
    RiskRule.objects.filter(code=RuleCode.ORDER_AMOUNT_LIMIT).update(action="review", threshold=Decimal("40.00"))


@pytest.mark.django_db
def test_a_held_order_is_delivered_only_after_approval(amount_rule_reviews_above_forty, risk_staff):
    product = make_product(price="48.00")
    add_keys(product, 1)
    order = buy(product)
    assert ReviewCase.objects.filter(order_id=order.pk).exists()

    # paid, and the fulfilment task and the sweeper both run: nothing leaves
    pay(order)
    fulfil_order(order_id=order.pk)
    sweep_stalled_orders()
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert not OrderDelivery.objects.filter(order=order).exists()

    # approved: the next run delivers
    release_held_order(order=order, actor=risk_staff, reason="核实为本人")
    fulfil_order(order_id=order.pk)
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert OrderDelivery.objects.filter(order=order).count() == 1


@pytest.mark.django_db
def test_a_rejected_held_order_is_refunded_and_never_delivered(
    amount_rule_reviews_above_forty, risk_staff, django_capture_on_commit_callbacks
):
    product = make_product(price="48.00")
    add_keys(product, 1)
    order = buy(product)
    pay(order)

    with django_capture_on_commit_callbacks(execute=True):
        reject_held_order(order=order, actor=risk_staff, reason="盗刷嫌疑")
    fulfil_order(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert order.refunded_amount == order.paid_amount
    assert not OrderDelivery.objects.filter(order=order).exists()
