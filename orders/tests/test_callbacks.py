"""Bad callbacks are rejected and recorded, and change nothing."""

import json
import threading

import pytest
from django.db import connection

from orders.gateways.sandbox import sign, signed_body
from orders.models import (
    CallbackOutcome,
    Order,
    OrderDelivery,
    OrderStatus,
    PaymentCallback,
)
from orders.services import fulfil_order, record_payment_notification

from .factories import add_keys, buy, make_product, pay, sandbox_notification


def _pending_order():
    product = make_product()
    add_keys(product, 2)
    return buy(product)


def _assert_nothing_changed(order):
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.paid_amount == 0
    assert not order.status_changes.exists()


@pytest.mark.django_db
def test_a_forged_signature_is_rejected_and_recorded():
    order = _pending_order()
    body, headers = sandbox_notification(order)
    headers["x-sandbox-signature"] = "0" * 64

    result = record_payment_notification(gateway_code="sandbox", body=body, headers=headers)

    assert not result.accepted and result.answer.status == 400
    callback = PaymentCallback.objects.get()
    assert (callback.outcome, callback.is_verified, callback.rejection_reason) == (CallbackOutcome.REJECTED, False, "签名无效")
    assert json.loads(callback.raw_body)["out_trade_no"] == order.order_no
    _assert_nothing_changed(order)


@pytest.mark.django_db
def test_a_tampered_amount_breaks_the_signature():
    order = _pending_order()
    body, headers = sandbox_notification(order)
    tampered = body.replace(b'"amount":"48.00"', b'"amount":"0.01"')

    result = record_payment_notification(gateway_code="sandbox", body=tampered, headers=headers)

    assert not result.accepted
    _assert_nothing_changed(order)


@pytest.mark.django_db
def test_a_signed_notification_with_the_wrong_amount_is_rejected():
    order = _pending_order()

    result = pay(order, amount="0.01")

    assert not result.accepted
    assert "金额不符" in result.callback.rejection_reason
    _assert_nothing_changed(order)


@pytest.mark.django_db
def test_a_wrong_currency_is_rejected():
    order = _pending_order()

    result = pay(order, currency="USD")

    assert not result.accepted and "币种" in result.callback.rejection_reason
    _assert_nothing_changed(order)


@pytest.mark.django_db
def test_a_wrong_app_id_is_rejected():
    order = _pending_order()

    result = pay(order, app_id="someone-else")

    assert not result.accepted and "应用 ID" in result.callback.rejection_reason
    _assert_nothing_changed(order)


@pytest.mark.django_db
def test_an_unknown_order_number_is_rejected_and_recorded():
    order = _pending_order()
    body, headers = signed_body(
        {"app_id": "kamen-sandbox", "event_id": "EVT-X", "out_trade_no": "K000", "trade_no": "SBX1",
         "amount": "48.00", "currency": "CNY", "status": "succeeded", "paid_at": None}
    )  # fmt: skip

    result = record_payment_notification(gateway_code="sandbox", body=body, headers=headers)

    assert not result.accepted
    assert PaymentCallback.objects.get(event_id="EVT-X").rejection_reason == "订单不存在"
    _assert_nothing_changed(order)


@pytest.mark.django_db
def test_garbage_is_rejected_as_malformed():
    body = b"not json"
    result = record_payment_notification(
        gateway_code="sandbox", body=body, headers={"x-sandbox-signature": sign(body)}
    )

    assert not result.accepted and result.callback.rejection_reason == "通知格式错误"


@pytest.mark.django_db(transaction=True)
def test_the_same_callback_twenty_times_at_once_pays_once_and_fulfils_once():
    # given one paid-to-be order and its notification
    product = make_product()
    add_keys(product, 5)
    order = buy(product)
    body, headers = sandbox_notification(order)
    answers, barrier = [], threading.Barrier(20)

    def deliver():
        try:
            barrier.wait()
            answers.append(record_payment_notification(gateway_code="sandbox", body=body, headers=headers).answer.body)
            fulfil_order(order_id=order.pk)
        finally:
            connection.close()

    # when twenty copies arrive at once, each followed by a fulfilment run
    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then: every copy is answered success, the order was paid once and delivered once
    assert answers == ["success"] * 20
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert order.status_changes.filter(new_status=OrderStatus.PAID).count() == 1
    assert order.status_changes.filter(new_status=OrderStatus.COMPLETED).count() == 1
    assert OrderDelivery.objects.filter(order=order).count() == 1
    callback = PaymentCallback.objects.get()
    assert callback.times_received == 20
    assert Order.objects.get(pk=order.pk).paid_amount == order.total_amount
