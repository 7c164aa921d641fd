"""The review queue: a held order is approved (fulfilment resumes) or rejected (refunded).

The tests stand in for the fulfilment task and ``refund_order`` with monkeypatch (in
``orders.services.review``, which decides the case and then acts on the order) and check that
they are called as the pipeline defines them; test_review_pipeline runs the real ones.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from kamen.models import AuditLogEntry
from orders.models import Order, OrderStatus
from riskcontrol.models import ReviewCase, ReviewStatus, RiskEvent
from orders.services.review import reject_held_order, release_held_order
from riskcontrol.services.cases import open_review_case
from riskcontrol.selectors import is_fulfilment_held
from riskcontrol.services.assessment import REVIEW, assess_checkout_in_full

pytestmark = pytest.mark.django_db


def held_order(product, *, status=OrderStatus.PAID, token="tok-1"):
    """What checkout does for a "review" verdict: the assessment, then the order marked."""
    result = assess_checkout_in_full(
        product=product,
        quantity=1,
        contact="buyer@example.com",
        buyer_ip="203.0.113.7",
        amount=Decimal("6000.00"),
        device_id="a1" * 8,
        checkout_token=token,
    )
    assert result.verdict in ("block", REVIEW)
    paid = Decimal("100.00") if status != OrderStatus.PENDING_PAYMENT else Decimal(0)
    order = Order.objects.create(
        order_no="K" + token,
        product=product,
        product_name=product.name,
        product_type=product.product_type,
        quantity=1,
        unit_price=Decimal("100.00"),
        total_amount=Decimal("100.00"),
        paid_amount=paid,
        paid_at=timezone.now() if paid else None,
        status=status,
        contact="buyer@example.com",
        contact_kind="email",
        query_password_hash="x",
        attribution={"risk": "review"},
        checkout_token=token,
        expires_at=timezone.now() + timedelta(minutes=15),
    )
    open_review_case(order=order)
    return order


@pytest.fixture
def fake_pipeline(monkeypatch):
    calls = {"enqueued": [], "refunds": []}
    import orders.services.review

    def refund_order(**kwargs):
        calls["refunds"].append(kwargs)
        return "refund"

    monkeypatch.setattr(
        orders.services.review,
        "run_task_now_or_enqueue",
        lambda name, **kwargs: calls["enqueued"].append((name, kwargs)),
    )
    monkeypatch.setattr(orders.services.review, "refund_order", refund_order)
    return calls


def test_a_review_order_opens_a_case_with_the_rules_that_fired(product):
    from riskcontrol.models import RiskRule, RuleCode

    RiskRule.objects.filter(code=RuleCode.ORDER_AMOUNT_LIMIT).update(action="review")
    order = held_order(product)

    case = ReviewCase.objects.get(order=order)
    assert case.status == ReviewStatus.PENDING
    assert "单笔金额" in case.reasons
    assert RiskEvent.objects.get().order_no == order.order_no
    assert is_fulfilment_held(order=order)


def test_approving_resumes_fulfilment_and_is_audited(
    product, risk_staff, fake_pipeline
):
    order = held_order(product)

    case = release_held_order(order=order, actor=risk_staff, reason="核实为本人")
    again = release_held_order(order=order, actor=risk_staff, reason="重复点击")

    assert case.status == again.status == ReviewStatus.APPROVED
    assert fake_pipeline["enqueued"] == [("fulfil_order_task", {"order_id": order.pk})]
    assert not is_fulfilment_held(order=order)
    assert (
        AuditLogEntry.objects.filter(
            action="riskcontrol.review_approved", actor=risk_staff
        ).count()
        == 1
    )


def test_approving_an_unpaid_order_waits_for_the_payment(
    product, risk_staff, fake_pipeline
):
    order = held_order(product, status=OrderStatus.PENDING_PAYMENT)

    release_held_order(order=order, actor=risk_staff)

    assert fake_pipeline["enqueued"] == []
    assert not is_fulfilment_held(order=order)


def test_rejecting_refunds_the_paid_amount_once_with_a_reason(
    product, risk_staff, fake_pipeline
):
    order = held_order(product)

    case = reject_held_order(order=order, actor=risk_staff, reason="盗刷")

    assert case.status == ReviewStatus.REJECTED
    refund = fake_pipeline["refunds"][0]
    assert (
        refund["amount"] == Decimal("100.00")
        and refund["out_refund_no"] == f"R{order.order_no}-risk"
    )
    assert "盗刷" in refund["reason"]
    assert is_fulfilment_held(order=order)
    assert AuditLogEntry.objects.filter(action="riskcontrol.review_rejected").exists()


def test_a_rejection_needs_a_reason_and_cannot_follow_an_approval(
    product, risk_staff, fake_pipeline
):
    order = held_order(product)

    with pytest.raises(ValidationError):
        reject_held_order(order=order, actor=risk_staff, reason="  ")
    release_held_order(order=order, actor=risk_staff)
    with pytest.raises(ValidationError):
        reject_held_order(order=order, actor=risk_staff, reason="改主意")

    assert fake_pipeline["refunds"] == []


def test_an_order_not_on_review_is_not_held(product):
    order = held_order(product)
    order.attribution = {}

    assert not is_fulfilment_held(order=order)


def test_risk_staff_decide_in_the_console_and_reasons_are_escaped(
    client, product, risk_staff, fake_pipeline
):
    order = held_order(product)
    case = ReviewCase.objects.get(order=order)
    client.force_login(risk_staff)

    page = client.get(reverse("admin:riskcontrol_reviewcase_decide", args=[case.pk]))
    response = client.post(
        reverse("admin:riskcontrol_reviewcase_decide", args=[case.pk]),
        {"decision": "rejected", "reason": "<script>alert(1)</script>"},
    )
    detail = client.get(reverse("admin:riskcontrol_reviewcase_decide", args=[case.pk]))

    assert page.status_code == 200 and order.order_no in page.content.decode()
    assert response.status_code == 302
    assert "<script>alert(1)</script>" not in detail.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail.content.decode()


def test_an_operator_without_the_permission_cannot_decide(client, product, staff_user):
    order = held_order(product)
    case = ReviewCase.objects.get(order=order)
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:riskcontrol_reviewcase_decide", args=[case.pk]),
        {"decision": "approved"},
    )

    assert response.status_code == 403
    assert ReviewCase.objects.get(pk=case.pk).status == ReviewStatus.PENDING


def test_risk_events_export_as_csv(client, product, risk_staff):
    held_order(product)
    client.force_login(risk_staff)

    response = client.get(reverse("admin:riskcontrol_riskevent_export"))

    body = response.content.decode("utf-8-sig")
    assert response["Content-Type"].startswith("text/csv")
    assert body.splitlines()[0].startswith("id,created_at,rule,action")
    assert "order_amount_limit" in body
