"""Stock purchase (进货) paid through the payment gateway: a pending purchase, the cashier, and the
verified notification delivers the keys into the portal once — a replayed or second notification,
twenty at once, a wrong amount or a forged body deliver nothing more; stock gone by the time the
money arrives goes to the buyer's balance; the purchase's books start at gateway clearing."""

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from catalog.models import CardKey, CardKeyStatus
from catalog.services import claim_card_keys
from commissions import selectors as commission_selectors
from commissions.models import JournalEntry
from commissions.selectors import ledger_differences
from commissions.tests.factories import make_chain
from distribution.models import GradeVolumeTier
from distribution.tests.factories import GradeFactory
from orders.gateways.sandbox import SandboxGateway, complete_sandbox_payment, signed_body
from orders.models import (
    CallbackOutcome,
    PaymentCallback,
    SandboxPayment,
    StatementStatus,
    StockPurchase,
    StockPurchaseStatus,
)
from orders.services import record_payment_notification, start_stock_purchase_payment, start_top_up
from orders.services.reconciliation import reconcile_statement

from .factories import add_keys, make_product

D = Decimal


def _agent():
    (agent,) = make_chain(1, grade=GradeFactory(wholesale_discount_bp=8000, may_buy_stock=True))
    return agent


def _product(keys=10):
    product = make_product(price="100.00", cost_price=D("50.00"))
    add_keys(product, keys, prefix="GW")
    return product


def _start(agent, product, quantity=2, token="gw"):
    purchase, _start = start_stock_purchase_payment(
        distributor_id=agent.pk,
        product=product,
        quantity=quantity,
        token=token,
        notify_url="http://testserver/n/",
        gateway_code="sandbox",
    )
    return purchase


def _notify(purchase, *, event_id=None, amount=None, tamper=False):
    payload = {
        "app_id": SandboxGateway().app_id,
        "event_id": event_id or f"EVT-{purchase.purchase_no}",
        "out_trade_no": purchase.purchase_no,
        "trade_no": f"SBX-{purchase.purchase_no}",
        "amount": amount or f"{purchase.total_amount:.2f}",
        "currency": "CNY",
        "status": "succeeded",
        "paid_at": None,
    }
    body, headers = signed_body(payload)
    if tamper:
        body = body.replace(b"CNY", b"CNX")
    return record_payment_notification(gateway_code=SandboxGateway.code, body=body, headers=headers)


def _sold(product) -> int:
    return CardKey.objects.filter(product=product, status=CardKeyStatus.SOLD).count()


@pytest.mark.django_db
@override_settings(SANDBOX_FEE_RATE="0.6", SANDBOX_FEE_MINIMUM="0.00")
def test_the_verified_notification_delivers_the_keys_once_and_books_the_payment_at_gateway_clearing():
    agent = _agent()
    product = _product()

    purchase = _start(agent, product)
    pending_keys = _sold(product)
    first = _notify(purchase)
    replay = _notify(purchase)
    second_event = _notify(purchase, event_id="EVT-another")
    purchase.refresh_from_db()
    lines = {
        entry.account.kind: entry.signed_amount
        for entry in JournalEntry.objects.filter(
            transaction__reference=f"books:stock:{purchase.purchase_no}"
        ).select_related("account")
    }

    assert pending_keys == 0
    assert (first.callback.outcome, second_event.callback.outcome) == (CallbackOutcome.PAID, CallbackOutcome.DUPLICATE)
    assert replay.callback.pk == first.callback.pk
    assert purchase.status == StockPurchaseStatus.COMPLETED and purchase.payment_method == "sandbox"
    assert purchase.keys.count() == 2 and _sold(product) == 2
    assert lines == {
        "gateway_clearing": D("-160.00"),
        "gateway_fees": D("0.96"),
        "supplier_cost": D("100.00"),
        "merchant_profit": D("59.04"),
    }
    assert commission_selectors.wallet(agent)["available"] == D("0.00")  # the wallet was not touched
    report = ledger_differences()
    assert report["accounts"] == [] and report["transactions"] == []


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_copies_of_the_notification_deliver_once():
    agent = _agent()
    product = _product()
    purchase = _start(agent, product, quantity=3)
    barrier = threading.Barrier(20)

    def run(event_id):
        try:
            barrier.wait()
            _notify(purchase, event_id=event_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(f"EVT-{index % 3}",)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert StockPurchase.objects.get().status == StockPurchaseStatus.COMPLETED
    assert _sold(product) == 3
    assert JournalEntry.objects.filter(transaction__reference=f"books:stock:{purchase.purchase_no}").count() >= 2
    assert PaymentCallback.objects.filter(outcome=CallbackOutcome.PAID).count() == 1


@pytest.mark.django_db
def test_a_wrong_amount_or_a_forged_body_delivers_nothing():
    agent = _agent()
    product = _product()
    purchase = _start(agent, product)

    wrong = _notify(purchase, amount="1.00")
    forged = _notify(purchase, event_id="EVT-forged", tamper=True)

    assert wrong.callback.outcome == CallbackOutcome.REJECTED and "金额不符" in wrong.callback.rejection_reason
    assert forged.callback.outcome == CallbackOutcome.REJECTED
    assert StockPurchase.objects.get().status == StockPurchaseStatus.PENDING
    assert _sold(product) == 0


@pytest.mark.django_db
def test_stock_gone_before_the_money_arrives_goes_to_the_buyers_balance():
    agent = _agent()
    product = _product(keys=2)
    purchase = _start(agent, product, quantity=2)
    claim_card_keys(product=product, quantity=1, reference="K-someone-else")

    result = _notify(purchase)
    purchase.refresh_from_db()

    assert result.callback.outcome == CallbackOutcome.PAID
    assert purchase.status == StockPurchaseStatus.CREDITED_TO_BALANCE
    assert purchase.keys.count() == 0 and _sold(product) == 1
    assert commission_selectors.wallet(agent)["available"] == D("160.00")


@pytest.mark.django_db
def test_the_month_volume_counts_only_purchases_that_completed():
    agent = _agent()
    type(agent.grade).objects.filter(pk=agent.grade_id).update(stock_tiers_count_month=True)
    agent.grade.refresh_from_db()
    GradeVolumeTier.objects.create(grade=agent.grade, product=None, min_quantity=5, rate_bp=9000)
    product = _product()

    _start(agent, product, quantity=3, token="never-paid")
    later = _start(agent, product, quantity=3, token="later")

    assert later.unit_price == D("80.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantity": 11}, "库存不足：仅剩 10 张"),
        ({"quantity": "abc"}, "进货数量必须是整数"),
        ({"quantity": 0}, "进货数量须在 1–1000 之间"),
        ({"grade": False}, "不能进货"),
        ({"token": ""}, "表单已过期"),
    ],
)
def test_bad_input_is_refused_before_the_cashier_and_nothing_is_recorded(change, message):
    agent = _agent()
    if change.get("grade") is False:
        type(agent.grade).objects.filter(pk=agent.grade_id).update(may_buy_stock=False)
    product = _product()

    with pytest.raises(ValidationError, match=message):
        start_stock_purchase_payment(
            distributor_id=agent.pk,
            product=product,
            quantity=change.get("quantity", 2),
            token=change.get("token", "bad"),
            notify_url="http://testserver/n/",
            gateway_code="sandbox",
        )

    assert StockPurchase.objects.count() == 0 and SandboxPayment.objects.count() == 0


@pytest.mark.django_db
def test_the_portal_sends_the_buyer_to_the_cashier_and_shows_the_keys_once_paid(client):
    agent = _agent()
    product = _product()
    client.force_login(agent.user)

    page = client.get(reverse("orders:agent-stock")).content.decode()
    started = client.post(
        reverse("orders:agent-stock"), {"product": product.pk, "quantity": "2", "token": "p1", "pay": "gateway"}
    )
    purchase = StockPurchase.objects.get()
    waiting = client.get(reverse("orders:agent-stock-detail", args=[purchase.purchase_no])).content.decode()
    payment = SandboxPayment.objects.get(out_trade_no=purchase.purchase_no)
    _notify(purchase)
    delivered = client.get(reverse("orders:agent-stock-detail", args=[purchase.purchase_no])).content.decode()

    assert 'data-testid="stock-pay-gateway"' in page
    assert started.status_code == 302 and payment.trade_no in started["Location"]
    assert "等待支付结果" in waiting and waiting.count('data-testid="stock-key"') == 0
    assert delivered.count('data-testid="stock-key"') == 2 and "已完成" in delivered


@pytest.mark.django_db
@override_settings(SANDBOX_FEE_RATE="0.6", SANDBOX_FEE_MINIMUM="0.01", SANDBOX_NOTIFY_OUT_OF_ORDER_PROBABILITY=0)
def test_the_days_statement_matches_gateway_top_ups_and_stock_purchases():
    """The gateway's statement lists a top-up (T…) and a stock purchase (S…) like any payment:
    reconciliation finds both in the books, with the fee booked, and nothing missing."""
    agent = _agent()
    product = _product()
    purchase = _start(agent, product)
    top_up, _start_top_up = start_top_up(distributor_id=agent.pk, amount="50.00", notify_url="http://testserver/n/")
    for number in (purchase.purchase_no, top_up.top_up_no):
        payment = SandboxPayment.objects.get(out_trade_no=number)
        complete_sandbox_payment(trade_no=payment.trade_no, succeeded=True)
    _notify(purchase)
    body, headers = signed_body(
        {
            "app_id": SandboxGateway().app_id,
            "event_id": f"EVT-{top_up.top_up_no}",
            "out_trade_no": top_up.top_up_no,
            "trade_no": f"SBX-{top_up.top_up_no}",
            "amount": "50.00",
            "currency": "CNY",
            "status": "succeeded",
            "paid_at": None,
        }
    )
    record_payment_notification(gateway_code=SandboxGateway.code, body=body, headers=headers)
    today = timezone.localdate()
    fmt, content = SandboxGateway().download_statement(day=today)

    statement = reconcile_statement(gateway_code="sandbox", day=today, content=content, statement_format=fmt)

    assert list(statement.differences.values_list("kind", "out_trade_no")) == []
    assert (statement.status, statement.line_count, statement.matched_count) == (StatementStatus.MATCHED, 2, 2)
