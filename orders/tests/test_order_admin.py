"""Orders in the merchant console: read-only history, secrets masked, actions behind permissions."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from catalog.models import CardKey, CardKeyBatch
from catalog.models.products import RedemptionMode
from kamen import crypto
from kamen.models import AuditLogEntry
from orders import admin as order_admin
from orders.models import (
    CallbackOutcome,
    DeliveryKind,
    OrderDelivery,
    OrderStatus,
    OrderStatusChange,
    PaymentCallback,
    Refund,
)
from orders.services.redemption import issue_vouchers, voucher_code

from .postsale_helpers import make_order, make_product

pytestmark = pytest.mark.django_db
ROLES = ["owner", "operator", "finance", "risk"]


@pytest.fixture
def staff_in(django_user_model):
    def make(role):
        user = django_user_model.objects.create_user(username=f"staff-{role}", password="kamen-test-pass", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def full_order():
    """A completed order with history, a callback, a delivered card key, a refund and a voucher."""
    product = make_product(name="<b>Steam</b> 50", redemption_mode=RedemptionMode.CODE)
    order = make_order(
        product=product,
        product_name="<script>alert('name')</script>",
        buyer_fields={"区服": "<img src=x onerror=alert(1)>"},
        password="buyer-query-password",
    )
    OrderStatusChange.objects.create(order=order, old_status="pending_payment", new_status="paid", cause="sandbox notify")
    PaymentCallback.objects.create(
        gateway="sandbox",
        event_id="evt-1",
        order=order,
        out_trade_no=order.order_no,
        amount=order.total_amount,
        currency="CNY",
        is_verified=True,
        outcome=CallbackOutcome.PAID,
        raw_body='{"trade_status":"<b>SUCCESS</b>"}',
        payload={"trade_status": "SUCCESS"},
    )
    batch = CardKeyBatch.objects.create(product=product, key_count=1)
    key_id, blob = crypto.encrypt("TOP-SECRET-KEY-9999")
    card_key = CardKey.objects.create(
        product=product, batch=batch, card_no="CARD12345678", secret_ciphertext=blob, key_id=key_id,
        fingerprint="admin-test-1", status="sold",
        sold_at=order.paid_at,
    )
    OrderDelivery.objects.create(order=order, product=product, kind=DeliveryKind.CARD_KEY, card_key=card_key)
    Refund.objects.create(order=order, amount=Decimal("1.00"), out_refund_no="R1", reason="部分退款", status="succeeded")
    [voucher] = issue_vouchers(order=order)
    return order, voucher


@pytest.mark.parametrize("role", ROLES)
def test_list_and_detail_render_for_every_role_without_secrets(client, staff_in, full_order, role):
    order, voucher = full_order
    client.force_login(staff_in(role))

    listing = client.get(reverse("admin:orders_order_changelist"))
    detail = client.get(reverse("admin:orders_order_change", args=[order.pk]))

    assert listing.status_code == 200 and order.order_no in listing.content.decode()
    assert detail.status_code == 200
    page = detail.content.decode()
    for secret in ("TOP-SECRET-KEY-9999", order.query_password_hash, voucher_code(voucher), voucher_code(voucher).replace("-", "")):
        assert secret not in page
    assert "CAR****678" in page
    assert "sandbox notify" in page and "evt-1" in page and "部分退款" in page
    assert f"…{voucher.code_last4}" in page
    assert 'name="_save"' not in page  # nothing is edited here


def test_custom_fields_and_payloads_are_escaped(client, owner_user, full_order):
    order, _voucher = full_order
    client.force_login(owner_user)

    listing = client.get(reverse("admin:orders_order_changelist")).content.decode()
    detail = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()

    for page in (listing, detail):
        assert "<script>alert('name')</script>" not in page
        assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in page
    assert "<img src=x onerror=alert(1)>" not in detail
    assert "&lt;img src=x onerror=alert(1)&gt;" in detail
    assert "<b>SUCCESS</b>" not in detail


def test_list_filters_and_search(client, owner_user):
    paid = make_order(status=OrderStatus.PAID, contact="find.me@example.com")
    completed = make_order(status=OrderStatus.COMPLETED)
    client.force_login(owner_user)
    url = reverse("admin:orders_order_changelist")

    by_status = client.get(url, {"status__exact": "paid"}).content.decode()
    by_number = client.get(url, {"q": completed.order_no}).content.decode()
    by_contact = client.get(url, {"q": " Find.Me@example.com "}).content.decode()

    assert paid.order_no in by_status and completed.order_no not in by_status
    assert completed.order_no in by_number and paid.order_no not in by_number
    assert paid.order_no in by_contact and completed.order_no not in by_contact


def test_staff_without_an_order_role_cannot_see_orders(client, django_user_model, full_order):
    order, _voucher = full_order
    nobody = django_user_model.objects.create_user(username="nobody", is_staff=True)
    client.force_login(nobody)

    assert client.get(reverse("admin:orders_order_changelist")).status_code == 403
    assert client.get(reverse("admin:orders_order_change", args=[order.pk])).status_code == 403


@pytest.mark.parametrize(
    ("role", "status", "links"),
    [
        ("operator", OrderStatus.PAID, {"order-redrive"}),
        ("operator", OrderStatus.PENDING_PAYMENT, {"order-confirm-payment"}),
        ("finance", OrderStatus.PAID, {"order-refund"}),
        ("risk", OrderStatus.PAID, set()),
        ("owner", OrderStatus.PAID, {"order-redrive", "order-refund"}),
        ("owner", OrderStatus.PENDING_PAYMENT, {"order-confirm-payment"}),
    ],
)
def test_each_role_sees_only_the_actions_it_may_take(client, staff_in, role, status, links):
    order = make_order(status=status)
    client.force_login(staff_in(role))

    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()

    shown = {link for link in ("order-confirm-payment", "order-redrive", "order-refund") if f'id="{link}"' in page}
    assert shown == links


# --- 补单 ---------------------------------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch):
    recorded = {}

    def recorder(name):
        def service(**kwargs):
            recorded.setdefault(name, []).append(kwargs)

        return service

    for name in ("confirm_payment_manually", "refund_order", "redrive_fulfilment"):
        monkeypatch.setattr(order_admin, name, recorder(name))
    return recorded


def test_operator_confirms_a_payment_by_hand_with_a_reason(client, staff_in, calls):
    order = make_order(status=OrderStatus.PENDING_PAYMENT)
    operator = staff_in("operator")
    client.force_login(operator)
    url = reverse("admin:orders_order_confirm_payment", args=[order.pk])

    assert client.get(url).status_code == 200
    response = client.post(url, {"reason": "买家提供了支付宝付款截图"})

    assert response.status_code == 302
    [call] = calls["confirm_payment_manually"]
    assert call["order"] == order and call["actor"] == operator and call["reason"] == "买家提供了支付宝付款截图"


def test_confirming_without_a_reason_is_refused_and_calls_nothing(client, staff_in, calls):
    order = make_order(status=OrderStatus.PENDING_PAYMENT)
    client.force_login(staff_in("operator"))

    response = client.post(reverse("admin:orders_order_confirm_payment", args=[order.pk]), {"reason": "  "})

    assert response.status_code == 400
    assert "confirm_payment_manually" not in calls


def test_finance_cannot_confirm_a_payment(client, staff_in, calls):
    order = make_order(status=OrderStatus.PENDING_PAYMENT)
    client.force_login(staff_in("finance"))

    response = client.post(reverse("admin:orders_order_confirm_payment", args=[order.pk]), {"reason": "x"})

    assert response.status_code == 403
    assert "confirm_payment_manually" not in calls


def test_a_service_error_is_shown_beside_the_form(client, staff_in, monkeypatch):
    from django.core.exceptions import ValidationError

    def refuse(**kwargs):
        raise ValidationError({"reason": ["请填写补单原因"]})

    monkeypatch.setattr(order_admin, "confirm_payment_manually", refuse)
    order = make_order(status=OrderStatus.PENDING_PAYMENT)
    client.force_login(staff_in("operator"))

    response = client.post(reverse("admin:orders_order_confirm_payment", args=[order.pk]), {"reason": "x"})

    assert response.status_code == 400 and "请填写补单原因" in response.content.decode()


# --- refunds ------------------------------------------------------------------------------------


def test_finance_refunds_part_of_an_order_with_restock(client, staff_in, calls):
    order = make_order(status=OrderStatus.COMPLETED)
    finance = staff_in("finance")
    client.force_login(finance)
    url = reverse("admin:orders_order_refund", args=[order.pk])

    assert client.get(url).status_code == 200
    response = client.post(url, {"amount": "10.50", "reason": "买家申请", "restock": "on"})

    assert response.status_code == 302
    [call] = calls["refund_order"]
    assert call["order"] == order and call["actor"] == finance
    assert call["amount"] == Decimal("10.50") and call["reason"] == "买家申请" and call["restock"] is True


def test_refunding_more_than_was_paid_is_refused(client, staff_in, calls):
    order = make_order(status=OrderStatus.COMPLETED)
    client.force_login(staff_in("finance"))

    response = client.post(reverse("admin:orders_order_refund", args=[order.pk]), {"amount": "48.01", "reason": "x"})

    assert response.status_code == 400
    assert "退款金额不能超过可退金额 ¥48.00" in response.content.decode()
    assert "refund_order" not in calls


def test_operator_cannot_refund(client, staff_in, calls):
    order = make_order(status=OrderStatus.COMPLETED)
    client.force_login(staff_in("operator"))

    assert client.get(reverse("admin:orders_order_refund", args=[order.pk])).status_code == 403
    assert "refund_order" not in calls


# --- re-drive -----------------------------------------------------------------------------------


def test_operator_redrives_a_stalled_order_and_it_is_audited(client, staff_in, monkeypatch):
    from orders.services import enqueue

    sent = []
    monkeypatch.setattr(enqueue, "run_task_now_or_enqueue", lambda name, **kwargs: sent.append((name, kwargs)))
    order = make_order(status=OrderStatus.PAID)
    client.force_login(staff_in("operator"))

    response = client.post(reverse("admin:orders_order_redrive", args=[order.pk]))

    assert response.status_code == 302
    assert sent == [("fulfil_order_task", {"order_id": order.pk})]
    assert AuditLogEntry.objects.filter(action="orders.fulfilment_redriven", target_id=str(order.pk)).exists()


def test_a_completed_order_is_not_redriven(client, staff_in, calls):
    order = make_order(status=OrderStatus.COMPLETED)
    client.force_login(staff_in("operator"))

    client.post(reverse("admin:orders_order_redrive", args=[order.pk]))

    assert "redrive_fulfilment" not in calls


def test_the_bulk_redrive_action_needs_the_permission(client, staff_in, calls):
    stalled = make_order(status=OrderStatus.FAILED)
    url = reverse("admin:orders_order_changelist")
    data = {"action": "redrive_selected", "_selected_action": [stalled.pk]}

    client.force_login(staff_in("risk"))
    client.post(url, data)
    assert "redrive_fulfilment" not in calls

    operator = staff_in("operator")
    client.force_login(operator)
    client.post(url, data)
    [call] = calls["redrive_fulfilment"]
    assert call["order"] == stalled and call["actor"] == operator


# --- vouchers and redemptions ------------------------------------------------------------------


def test_voucher_pages_find_a_voucher_by_its_full_code_only(client, owner_user, full_order):
    order, voucher = full_order
    client.force_login(owner_user)
    url = reverse("admin:orders_voucher_changelist")

    by_code = client.get(url, {"q": voucher_code(voucher).lower()}).content.decode()
    by_fragment = client.get(url, {"q": voucher.code_last4}).content.decode()

    assert order.order_no in by_code
    assert order.order_no not in by_fragment
    assert client.get(reverse("admin:orders_voucherredemption_changelist")).status_code == 200
    assert client.get(reverse("admin:orders_paymentcallback_changelist")).status_code == 200
    assert client.get(reverse("admin:orders_refund_changelist")).status_code == 200
