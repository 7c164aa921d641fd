"""The console's order actions by state: for every order state and every action, the console
offers the action exactly when its endpoint accepts it; a refused action answers with a
message and changes nothing (never "已提交补单" for a 补单 that did nothing)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from kamen.models import AuditLogEntry
from orders.models import Order, OrderStatus, PaymentCallback, Refund
from orders.services import enqueue

from .postsale_helpers import make_order

pytestmark = pytest.mark.django_db
S = OrderStatus

# What a person would expect, written out (not derived from the code under test).
EXPECTED = {
    "confirm_payment": {S.PENDING_PAYMENT, S.EXPIRED},
    "refund": {S.PAID, S.BACKORDERED, S.FAILED, S.PARTIALLY_FULFILLED, S.COMPLETED, S.PARTIALLY_REFUNDED},
    "redrive": {S.PAID, S.FULFILLING, S.BACKORDERED, S.FAILED},
}
LINKS = {"confirm_payment": "order-confirm-payment", "refund": "order-refund", "redrive": "order-redrive"}
POSTS = {
    "confirm_payment": ("admin:orders_order_confirm_payment", {"reason": "买家提供了付款截图"}),
    "refund": ("admin:orders_order_refund", {"reason": "买家申请"}),
    "redrive": ("admin:orders_order_redrive", {}),
}


@pytest.fixture
def enqueued(monkeypatch):
    sent = []
    monkeypatch.setattr(enqueue, "run_task_now_or_enqueue", lambda name, **kwargs: sent.append((name, kwargs)))
    return sent


def order_in(status: str) -> Order:
    """An order as the pipeline leaves it in ``status``: unpaid before payment, paid after,
    part or all of it refunded in the refund states; paid offline so refunds need no gateway."""
    order = make_order(status=status)
    paid = status not in (S.PENDING_PAYMENT, S.EXPIRED)
    refunded = {S.PARTIALLY_REFUNDED: Decimal("10.00"), S.REFUNDED: order.total_amount}.get(status, Decimal("0"))
    Order.objects.filter(pk=order.pk).update(
        payment_gateway="manual",
        paid_amount=order.total_amount if paid else 0,
        paid_at=order.paid_at if paid else None,
        refunded_amount=refunded,
    )
    order.refresh_from_db()
    return order


def snapshot(order: Order) -> tuple:
    order.refresh_from_db()
    return (
        order.status,
        order.paid_amount,
        order.refunded_amount,
        PaymentCallback.objects.count(),
        Refund.objects.count(),
        AuditLogEntry.objects.filter(action__startswith="orders.").count(),
    )


@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("status", S.values)
def test_the_console_offers_an_action_exactly_when_its_endpoint_accepts_it(
    client, owner_user, enqueued, status, action
):
    order = order_in(status)
    client.force_login(owner_user)
    expected = status in EXPECTED[action]

    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    form = client.get(reverse(POSTS[action][0], args=[order.pk])).content.decode()
    before = snapshot(order)
    name, data = POSTS[action]
    if action == "refund":
        data = dict(data, amount=str(order.paid_amount - order.refunded_amount or Decimal("1.00")))
    response = client.post(reverse(name, args=[order.pk]), data, follow=True)
    body = response.content.decode()

    assert (f'id="{LINKS[action]}"' in page) is expected
    assert ('id="order-action-form"' in form) is expected
    if expected:
        assert response.redirect_chain and snapshot(order) != before
        assert "已提交" in body or "已重新发起发货" in body
    else:
        assert response.status_code == 400 and 'id="order-action-refused"' in body
        assert "已提交" not in body and "已重新发起发货" not in body
        assert snapshot(order) == before and enqueued == []


def test_a_refunded_order_refuses_a_manual_payment_confirmation_with_a_message(client, owner_user):
    order = order_in(S.REFUNDED)
    client.force_login(owner_user)

    response = client.post(reverse("admin:orders_order_confirm_payment", args=[order.pk]), {"reason": "补单"})

    assert response.status_code == 400
    assert "已退款" in response.content.decode() and "无需人工补单" in response.content.decode()
    assert not PaymentCallback.objects.exists()


def test_the_services_refuse_what_the_console_does_not_offer(owner_user, enqueued):
    from django.core.exceptions import ValidationError

    from orders.services import confirm_payment_manually, redrive_fulfilment

    refunded = order_in(S.REFUNDED)

    with pytest.raises(ValidationError, match="无需人工补单"):
        confirm_payment_manually(order=refunded, actor=owner_user, reason="补单")
    with pytest.raises(ValidationError, match="无需重新发货"):
        redrive_fulfilment(order=refunded, actor=owner_user)
    assert not PaymentCallback.objects.exists() and enqueued == []


def test_an_order_held_for_risk_review_is_not_offered_a_redrive(client, owner_user, enqueued):
    from riskcontrol.services.cases import open_review_case

    order = order_in(S.PAID)
    Order.objects.filter(pk=order.pk).update(attribution={"risk": "review"})
    order.refresh_from_db()
    open_review_case(order=order)
    client.force_login(owner_user)

    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    response = client.post(reverse("admin:orders_order_redrive", args=[order.pk]))

    assert 'id="order-redrive"' not in page
    assert response.status_code == 400 and "正在风控审核" in response.content.decode()
    assert enqueued == []


@pytest.mark.parametrize("object_id", ["²", "١", "abc"])
def test_an_order_page_with_an_id_that_is_not_a_number_is_not_a_server_error(client, owner_user, object_id):
    client.force_login(owner_user)

    response = client.get(f"/admin/orders/order/{object_id}/change/")

    assert response.status_code in (302, 404)
