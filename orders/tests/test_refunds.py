"""Refunds: through the gateway, never more than paid, idempotent, keys voided, signal sent."""

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection

from catalog.models import CardKey, CardKeyStatus
from orders.models import Order, OrderStatus, Refund, RefundStatus, SandboxPayment
from orders.services import fulfil_order, refund_order
from orders.signals import order_refunded

from .factories import add_keys, buy, make_product, pay


def _completed_order(quantity=2):
    product = make_product(price="10.00")
    add_keys(product, quantity + 2)
    order = buy(product, quantity=quantity)
    pay(order)
    fulfil_order(order_id=order.pk)
    return Order.objects.get(pk=order.pk)


@pytest.mark.django_db
def test_a_partial_then_full_refund_goes_through_the_gateway(django_capture_on_commit_callbacks, owner_user):
    order = _completed_order()
    heard = []
    order_refunded.connect(lambda sender, **kw: heard.append(kw["amount"]), weak=False, dispatch_uid="test-refund")

    with django_capture_on_commit_callbacks(execute=True):
        refund_order(order=order, amount="5.00", reason="少发", actor=owner_user)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PARTIALLY_REFUNDED
    with django_capture_on_commit_callbacks(execute=True):
        refund_order(order=order, amount="15.00", reason="全部退", actor=owner_user)

    order.refresh_from_db()
    order_refunded.disconnect(dispatch_uid="test-refund")
    assert order.status == OrderStatus.REFUNDED and order.refunded_amount == Decimal("20.00")
    assert heard == [Decimal("5.00"), Decimal("15.00")]
    assert SandboxPayment.objects.get(out_trade_no=order.order_no).refunded_amount == Decimal("20.00")
    assert CardKey.objects.filter(status=CardKeyStatus.VOID).count() == 2


@pytest.mark.django_db
def test_refunding_more_than_paid_is_refused_and_changes_nothing():
    order = _completed_order()

    with pytest.raises(ValidationError) as error:
        refund_order(order=order, amount="20.01", reason="too much")

    assert "超过可退金额" in str(error.value)
    assert not Refund.objects.exists()
    assert Order.objects.get(pk=order.pk).refunded_amount == 0


@pytest.mark.parametrize("amount", ["0", "-1", "1.001", "abc"])
@pytest.mark.django_db
def test_bad_refund_amounts_are_refused(amount):
    order = _completed_order()

    with pytest.raises(ValidationError):
        refund_order(order=order, amount=amount, reason="x")


@pytest.mark.django_db
def test_the_same_refund_number_twice_refunds_once():
    order = _completed_order()

    first = refund_order(order=order, amount="5.00", reason="a", out_refund_no="R-1")
    second = refund_order(order=order, amount="5.00", reason="a", out_refund_no="R-1")

    assert first.pk == second.pk
    assert Order.objects.get(pk=order.pk).refunded_amount == Decimal("5.00")


@pytest.mark.django_db
def test_the_database_refuses_a_refund_above_the_paid_amount():
    order = _completed_order()

    with pytest.raises(IntegrityError):
        Order.objects.filter(pk=order.pk).update(refunded_amount=Decimal("20.01"))


@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_never_exceed_what_was_paid():
    order = _completed_order()
    outcomes = []

    def attempt():
        try:
            refund_order(order=order, amount="8.00", reason="race")
            outcomes.append("ok")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["ok", "ok", "refused", "refused", "refused"]
    assert Order.objects.get(pk=order.pk).refunded_amount == Decimal("16.00")
    assert Refund.objects.filter(status=RefundStatus.SUCCEEDED).count() == 2


@pytest.mark.django_db
def test_an_unpaid_order_cannot_be_refunded():
    product = make_product()
    add_keys(product, 1)
    order = buy(product)

    with pytest.raises(ValidationError):
        refund_order(order=order, amount="1.00", reason="x")


@pytest.mark.django_db
def test_refunding_a_paid_undelivered_order_can_return_its_keys_to_stock():
    product = make_product(price="10.00")
    add_keys(product, 1)
    order = buy(product)
    pay(order)

    refund_order(order=order, amount="10.00", reason="buyer cancelled", restock=True)

    assert Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED
    assert CardKey.objects.get().status == CardKeyStatus.AVAILABLE
