"""Property-based (issue 18 §4): random stock purchases — prices, batch costs, grade discounts,
upline chains and rates, the merchant's depth, caps and rule, paid from the wallet or through a
gateway with a random fee. Every purchase's books balance to the fen and close revenue; profit =
paid − fee − cost − commissions; the upline's commissions never exceed either cap, reach at most
3 levels (never beyond the merchant's depth) and are nothing under the "none" rule."""

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.models import CardKeyBatch
from commissions.models import Commission, JournalEntry
from commissions.selectors import ledger_differences
from commissions.services import get_policy
from commissions.tests.test_withdrawals import _fund
from distribution.models import DistributionSettings
from distribution.tests.factories import DistributorFactory, GradeFactory
from orders.gateways.sandbox import SandboxGateway, signed_body
from orders.models import StockPurchaseStatus
from orders.services import purchase_stock, record_payment_notification, start_stock_purchase_payment

from .factories import add_keys, make_product

D = Decimal
FEN = D("0.01")
money = st.integers(min_value=100, max_value=50_000).map(lambda fen: D(fen) / 100)
rate = st.integers(min_value=0, max_value=6000)


@st.composite
def purchases(draw):
    return {
        "price": draw(money),
        "cost_share": draw(st.integers(min_value=0, max_value=100)),  # % of the price
        "batch_cost": draw(st.none() | money),
        "quantity": draw(st.integers(min_value=1, max_value=4)),
        "buyer_discount": draw(st.integers(min_value=5000, max_value=10000)),
        "upline": draw(
            st.lists(st.tuples(st.integers(min_value=3000, max_value=10000), rate, rate, rate), min_size=0, max_size=4)
        ),
        "depth": draw(st.integers(min_value=1, max_value=3)),
        "order_cap": draw(st.integers(min_value=0, max_value=10000)),
        "margin_cap": draw(st.integers(min_value=0, max_value=10000)),
        "on_the_margin": draw(st.booleans()),
        "gateway": draw(st.booleans()),
        "fee_rate": draw(st.integers(min_value=0, max_value=300)),  # hundredths of a percent
        "fee_minimum": draw(st.integers(min_value=0, max_value=100)),  # fen
    }


def _network(case):
    parent = None
    made = []
    for discount, level1, level2, level3 in reversed(case["upline"]):  # the farthest first
        grade = GradeFactory(
            wholesale_discount_bp=discount,
            commission_level1_bp=level1,
            commission_level2_bp=level2,
            commission_level3_bp=level3,
        )
        parent = DistributorFactory(parent=parent, grade=grade)
        made.append(parent)
    buyer = DistributorFactory(
        parent=parent, grade=GradeFactory(wholesale_discount_bp=case["buyer_discount"], may_buy_stock=True)
    )
    return buyer, list(reversed(made))  # nearest first


def _notify(purchase):
    payload = {
        "app_id": SandboxGateway().app_id,
        "event_id": f"EVT-{purchase.purchase_no}",
        "out_trade_no": purchase.purchase_no,
        "trade_no": f"SBX-{purchase.purchase_no}",
        "amount": f"{purchase.total_amount:.2f}",
        "currency": "CNY",
        "status": "succeeded",
        "paid_at": None,
    }
    body, headers = signed_body(payload)
    return record_payment_notification(gateway_code=SandboxGateway.code, body=body, headers=headers)


def _expected_fee(case, paid):
    if not case["gateway"]:
        return D("0.00")
    fee = (paid * D(case["fee_rate"]) / D(10_000)).quantize(FEN, rounding=ROUND_HALF_UP)
    return min(max(fee, D(case["fee_minimum"]) / 100), paid)


def _merchant_lines(purchase) -> dict[tuple[str, str], D]:
    """(journal reference, account kind) → signed merchant amount, for what the purchase posted."""
    number = purchase.purchase_no
    references = [f"wallet:stock:{number}", f"stock-commission:{number}", f"books:stock:{number}"]
    lines: dict[tuple[str, str], D] = {}
    entries = JournalEntry.objects.filter(transaction__reference__in=references).select_related(
        "account", "transaction"
    )
    for entry in entries:
        if entry.account.distributor_id is None:
            key = (entry.transaction.reference, entry.account.kind)
            lines[key] = lines.get(key, D("0.00")) + entry.signed_amount
    return lines


def _by_kind(lines) -> dict[str, D]:
    sums: dict[str, D] = {}
    for (_reference, kind), amount in lines.items():
        sums[kind] = sums.get(kind, D("0.00")) + amount
    return sums


@pytest.mark.django_db
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(case=purchases())
def test_every_stock_purchase_balances_and_its_commissions_stay_within_the_rules(case):
    fees = {
        "SANDBOX_FEE_RATE": str(D(case["fee_rate"]) / 100),
        "SANDBOX_FEE_MINIMUM": str(D(case["fee_minimum"]) / 100),
    }
    with transaction.atomic(), override_settings(**fees):
        DistributionSettings.objects.update_or_create(pk=1, defaults={"commission_depth": case["depth"]})
        policy = get_policy()
        policy.stock_commission_mode = "margin" if case["on_the_margin"] else "none"
        policy.max_order_share_bp = case["order_cap"]
        policy.max_margin_share_bp = case["margin_cap"]
        policy.save()
        price, quantity = case["price"], case["quantity"]
        product = make_product(price=str(price), cost_price=(price * case["cost_share"] / 100).quantize(FEN))
        keys = add_keys(product, quantity, prefix="PROP")
        CardKeyBatch.objects.filter(pk=keys[0].batch_id).update(unit_cost=case["batch_cost"])
        cost = (case["batch_cost"] if case["batch_cost"] is not None else product.cost_price) * quantity
        buyer, upline = _network(case)

        if case["gateway"]:
            purchase, _start = start_stock_purchase_payment(
                distributor_id=buyer.pk,
                product=product,
                quantity=quantity,
                token="prop",
                notify_url="http://testserver/n/",
                gateway_code="sandbox",
            )
            _notify(purchase)
            purchase.refresh_from_db()
        else:
            _fund(buyer, "100000.00")
            purchase = purchase_stock(distributor_id=buyer.pk, product=product, quantity=quantity, token="prop")

        paid, fee = purchase.total_amount, _expected_fee(case, purchase.total_amount)
        earned = list(Commission.objects.filter(stock_purchase=purchase).order_by("level"))
        commissions = sum((row.amount for row in earned), D("0.00"))
        lines = _merchant_lines(purchase)
        by_kind = _by_kind(lines)

        assert purchase.status == StockPurchaseStatus.COMPLETED and purchase.keys.count() == quantity
        assert commissions <= (paid * case["order_cap"] / 10_000).quantize(FEN, rounding=ROUND_DOWN)
        assert commissions <= (max(paid - cost, D(0)) * case["margin_cap"] / 10_000).quantize(FEN, rounding=ROUND_DOWN)
        assert all(row.level <= min(case["depth"], 3) for row in earned)
        assert all(row.beneficiary_id == upline[row.level - 1].pk for row in earned)
        assert case["on_the_margin"] or not earned
        for reference in {reference for reference, _kind in lines}:
            assert sum(amount for (ref, _kind), amount in lines.items() if ref == reference) + sum(
                e.signed_amount
                for e in JournalEntry.objects.filter(
                    transaction__reference=reference, account__distributor__isnull=False
                )
            ) == D("0.00")
        assert by_kind.get("merchant_revenue", D("0.00")) == D("0.00")
        assert by_kind.get("merchant_profit", D("0.00")) == paid - fee - cost - commissions
        assert by_kind.get("gateway_clearing", D("0.00")) == (-paid if case["gateway"] else D("0.00"))
        assert by_kind.get("supplier_cost", D("0.00")) == cost
        report = ledger_differences()
        assert report["accounts"] == [] and report["transactions"] == []
        transaction.set_rollback(True)
