"""Active query, staff confirmation (补单), the wallet seam and the sandbox gateway itself."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from kamen.models import AuditLogEntry
from orders.gateways import GatewayError, get_gateway
from orders.gateways.base import HttpResponse
from orders.gateways.sandbox import (
    complete_sandbox_payment,
    deliver_sandbox_notification,
)
from orders.models import (
    CallbackOutcome,
    Order,
    OrderStatus,
    PaymentCallback,
    SandboxNotification,
)
from orders.services import (
    confirm_payment_manually,
    pay_with_wallet,
    query_pending_payments,
    sync_payment_status,
)

from .factories import add_keys, buy, make_product, pay, start_sandbox


def _order():
    product = make_product()
    add_keys(product, 2)
    return buy(product)


@pytest.mark.django_db
def test_an_active_query_marks_a_paid_order_once():
    order = _order()
    payment = start_sandbox(order)
    complete_sandbox_payment(trade_no=payment.trade_no, succeeded=True)

    first = sync_payment_status(order=order)
    second = sync_payment_status(order=order)

    assert first.outcome == CallbackOutcome.PAID and second.pk == first.pk
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


@pytest.mark.django_db
def test_the_scheduled_query_asks_about_quiet_payments(settings):
    from datetime import timedelta

    from django.utils import timezone

    from orders.models import PaymentAttempt

    order = _order()
    payment = start_sandbox(order)
    complete_sandbox_payment(trade_no=payment.trade_no, succeeded=True)
    PaymentAttempt.objects.update(created_at=timezone.now() - timedelta(minutes=5))

    assert query_pending_payments() == 1
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


@pytest.mark.django_db
def test_a_query_for_an_unpaid_order_changes_nothing():
    order = _order()
    start_sandbox(order)

    callback = sync_payment_status(order=order)

    assert callback.outcome == CallbackOutcome.IGNORED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.django_db
def test_staff_confirm_a_payment_by_hand_with_a_reason_audited_once(owner_user):
    order = _order()

    with pytest.raises(ValidationError):
        confirm_payment_manually(order=order, actor=owner_user, reason=" ")
    first = confirm_payment_manually(order=order, actor=owner_user, reason="买家提供了支付截图")
    with pytest.raises(ValidationError, match="已收到付款，无需人工补单"):  # a second click: said, not redone
        confirm_payment_manually(order=order, actor=owner_user, reason="再点一次")

    assert first.outcome == CallbackOutcome.PAID
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID and order.payment_gateway == "manual"
    assert AuditLogEntry.objects.filter(action="orders.payment_confirmed_manually").count() == 1


@pytest.mark.django_db
def test_a_callback_after_manual_confirmation_is_a_duplicate(owner_user):
    order = _order()
    confirm_payment_manually(order=order, actor=owner_user, reason="电话确认")

    late = pay(order)

    assert late.callback.outcome == CallbackOutcome.DUPLICATE
    assert Order.objects.get(pk=order.pk).status_changes.filter(new_status=OrderStatus.PAID).count() == 1


@pytest.mark.django_db
def test_manual_confirmation_needs_the_permission(django_user_model):
    order = _order()
    clerk = django_user_model.objects.create_user(username="clerk", password="x", is_staff=True)

    with pytest.raises(PermissionDenied):
        confirm_payment_manually(order=order, actor=clerk, reason="trust me")


@pytest.mark.django_db
def test_the_sandbox_retries_until_answered_success():
    order = _order()
    payment = start_sandbox(order)
    complete_sandbox_payment(trade_no=payment.trade_no, succeeded=True)
    notification = SandboxNotification.objects.first()
    answers = iter([HttpResponse(500, {}, b"oops"), HttpResponse(200, {}, b"success")])

    assert deliver_sandbox_notification(notification_id=notification.pk, transport=lambda *a: next(answers)) is False
    assert deliver_sandbox_notification(notification_id=notification.pk, transport=lambda *a: next(answers)) is True

    notification.refresh_from_db()
    assert notification.attempts == 2 and notification.delivered_at is not None


@pytest.mark.django_db
def test_the_sandbox_refuses_to_refund_more_than_it_collected():
    order = _order()
    pay(order)
    gateway = get_gateway("sandbox")

    gateway.refund(out_trade_no=order.order_no, out_refund_no="R1", refund_amount=Decimal("40.00"), total_amount=Decimal("48.00"), reason="x")
    with pytest.raises(GatewayError):
        gateway.refund(out_trade_no=order.order_no, out_refund_no="R2", refund_amount=Decimal("8.01"), total_amount=Decimal("48.00"), reason="x")
    again = gateway.refund(out_trade_no=order.order_no, out_refund_no="R1", refund_amount=Decimal("40.00"), total_amount=Decimal("48.00"), reason="x")

    assert again.amount == Decimal("40.00")


@pytest.mark.django_db
def test_a_failed_sandbox_payment_leaves_the_order_payable():
    order = _order()
    payment = start_sandbox(order)
    complete_sandbox_payment(trade_no=payment.trade_no, succeeded=False)

    callback = sync_payment_status(order=order)

    assert callback.outcome == CallbackOutcome.IGNORED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert not PaymentCallback.objects.filter(outcome=CallbackOutcome.PAID).exists()


@pytest.mark.django_db
def test_a_payment_through_a_second_gateway_is_recorded_for_staff_to_refund(owner_user):
    order = _order()
    confirm_payment_manually(order=order, actor=owner_user, reason="线下转账")

    second = pay(order)

    assert second.callback.outcome == CallbackOutcome.DUPLICATE and second.accepted
    assert "重复支付" in second.callback.rejection_reason


@pytest.mark.django_db
def test_a_second_payment_after_a_refund_is_recorded_as_unexpected_for_finance_to_refund(client, owner_user):
    # given an order paid through the sandbox, delivered, then refunded in full
    from orders.services import fulfil_order, refund_order

    order = _order()
    pay(order)
    fulfil_order(order_id=order.pk)
    refund_order(order=Order.objects.get(pk=order.pk), amount=order.total_amount, reason="买家申请", actor=owner_user)

    # when the same gateway reports a second, different payment (new trade number, new event)
    second = pay(order, event_id="EVT-second", trade_no="SBX-SECOND-TRADE")
    replay = pay(order, event_id="EVT-second", trade_no="SBX-SECOND-TRADE")
    same_payment_again = pay(order, event_id="EVT-query-of-the-first")

    # then it is accepted (the money is recorded) with the reason, and finance sees it
    callback = second.callback
    assert second.accepted and callback.outcome == CallbackOutcome.DUPLICATE
    assert "意外付款" in callback.rejection_reason and "SBX-SECOND-TRADE" in callback.rejection_reason
    assert "请人工退款" in callback.rejection_reason
    assert replay.callback.pk == callback.pk
    assert same_payment_again.callback.rejection_reason == ""  # the first payment again: a plain duplicate
    assert Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED
    client.force_login(owner_user)
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert 'id="unexpected-payments"' in page and "SBX-SECOND-TRADE" in page and "请人工退款" in page
    listing = client.get("/admin/orders/paymentcallback/?needs_refund=yes").content.decode()
    assert "EVT-second" in listing and "EVT-query-of-the-first" not in listing
