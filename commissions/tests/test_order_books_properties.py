"""Property-based: random orders of every product type, fees, costs, commission chains and
refunds, through the real pipeline (checkout, the sandbox gateway's notification, fulfilment,
refunds). Every order's books balance to the fen, profit = paid − fee − cost − commissions −
price differences, and after a full refund every account is back where it was but the fee the
gateway kept (issue 18 §4, docs/adr/0020)."""

from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import catalog.services
from catalog.models import BundleItem, CardKeyBatch, ProductType, Supplier, SupplierChannel, SupplierRechargeAttempt
from commissions.book_selectors import order_books
from commissions.models import JournalEntry
from commissions.selectors import ledger_differences
from distribution.services.referrals import create_referral_link
from orders.models import Order, OrderStatus
from orders.services import fulfil_order
from orders.services.fulfilment import deliver_manually
from orders.services.refunds import refund_order
from orders.tests.factories import add_keys, buy, make_product, pay

from .factories import make_chain

D = Decimal
FEN = D("0.01")
money = st.integers(min_value=1, max_value=50_000).map(lambda fen: D(fen) / 100)


@dataclass
class Outcome:
    status: str
    message: str = ""


@st.composite
def orders(draw):
    return {
        "kind": draw(st.sampled_from(["card_key", "manual", "top_up", "bundle"])),
        "price": draw(money),
        "quantity": draw(st.integers(min_value=1, max_value=3)),
        "batch_cost": draw(st.none() | money),
        "cost_price": draw(money),
        "charged": draw(st.none() | money),
        "fee_rate": draw(st.integers(min_value=0, max_value=300)),  # hundredths of a percent
        "fee_minimum": draw(st.integers(min_value=0, max_value=100)),  # fen
        "fee_refunded": draw(st.booleans()),
        "levels": draw(st.integers(min_value=0, max_value=3)),
        "rates": draw(st.tuples(*[st.integers(min_value=0, max_value=1500)] * 3)),
        "refunds": draw(st.lists(st.integers(min_value=1, max_value=60), max_size=2)),  # % of what is left
        "full_refund": draw(st.booleans()),
    }


def _product(case, owner):
    price, quantity = case["price"], case["quantity"]
    if case["kind"] == "card_key":
        product = make_product(price=str(price), cost_price=case["cost_price"])
        keys = add_keys(product, quantity)
        CardKeyBatch.objects.filter(pk=keys[0].batch_id).update(unit_cost=case["batch_cost"])
        unit = case["batch_cost"] if case["batch_cost"] is not None else case["cost_price"]
        return product, unit * quantity
    if case["kind"] == "manual":
        return make_product(product_type=ProductType.MANUAL, price=str(price), cost_price=case["cost_price"]), case[
            "cost_price"
        ] * quantity
    if case["kind"] == "top_up":
        product = make_product(
            product_type=ProductType.DIRECT_RECHARGE,
            recharge_target_rule="mobile",
            price=str(price),
            cost_price=case["cost_price"],
        )
        return product, case["charged"] if case["charged"] is not None else case["cost_price"] * quantity
    steam = make_product(cost_price=case["cost_price"])
    add_keys(steam, 2 * quantity)
    vip = make_product(product_type=ProductType.MANUAL, cost_price=D("1.50"))
    bundle = make_product(product_type=ProductType.BUNDLE, price=str(price))
    BundleItem.objects.create(bundle=bundle, component=steam, quantity=2)
    BundleItem.objects.create(bundle=bundle, component=vip, quantity=1)
    return bundle, case["cost_price"] * 2 * quantity + D("1.50") * quantity


def _supplier_charges(case):
    def send_top_up(*, product, reference, target, quantity):
        supplier, _ = Supplier.objects.get_or_create(
            name="供货商",
            defaults={"base_url": "/sandbox/", "app_id": "a", "app_secret_ciphertext": b"x", "app_secret_key_id": "k"},
        )
        channel, _ = SupplierChannel.objects.get_or_create(
            product=product, supplier=supplier, defaults={"supplier_sku": "S", "cost": D("1")}
        )
        SupplierRechargeAttempt.objects.create(
            reference=reference, channel=channel, supplier=supplier, product=product, out_order_no=f"T{reference}",
            target=target, quantity=quantity, status="succeeded", cost=case["charged"],
        )  # fmt: skip
        return Outcome("succeeded", "到账成功")

    return send_top_up


def _expected_fee(case, paid):
    fee = (paid * D(case["fee_rate"]) / D(10_000)).quantize(FEN, rounding=ROUND_HALF_UP)
    return min(max(fee, D(case["fee_minimum"]) / 100), paid)


def _signed_by_account(order) -> dict:
    sums = defaultdict(lambda: D("0.00"))
    for entry in JournalEntry.objects.filter(transaction__order_id=order.pk).select_related("account"):
        sums[(entry.account.kind, entry.account.distributor_id)] += entry.signed_amount
    return sums


def _assert_books_hold(order, books):
    net = books.paid - books.refunded
    assert books.profit == net - books.fee - books.cost - books.commission_total - books.price_differences
    transactions = defaultdict(lambda: D("0.00"))
    for line in books.lines:
        transactions[line.transaction_id] += line.signed
    assert set(transactions.values()) <= {D("0.00")}


@pytest.mark.django_db
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(case=orders())
def test_every_order_balances_and_profit_is_what_is_left(case, owner_user, monkeypatch):
    monkeypatch.setattr(catalog.services, "send_top_up", _supplier_charges(case), raising=False)
    fees = {
        "SANDBOX_FEE_RATE": str(D(case["fee_rate"]) / 100),
        "SANDBOX_FEE_MINIMUM": str(D(case["fee_minimum"]) / 100),
        "SANDBOX_FEE_REFUNDED": "1" if case["fee_refunded"] else "0",
    }
    with transaction.atomic(), override_settings(**fees):
        product, cost = _product(case, owner_user)
        referral = {}
        if case["levels"]:
            seller, *_upline = make_chain(case["levels"], rates=case["rates"])
            referral = {
                "referral": {
                    "code": create_referral_link(distributor=seller, channel="wechat").code,
                    "channel": "wechat",
                }
            }
        extra = {"recharge_target": "13800138000"} if case["kind"] == "top_up" else {}
        order = buy(product, quantity=case["quantity"], **referral, **extra)
        pay(order)
        fulfil_order(order_id=order.pk)
        if case["kind"] in ("manual", "bundle"):
            deliver_manually(order=order, content="已开通", actor=owner_user)
        order = Order.objects.get(pk=order.pk)
        assert order.status == OrderStatus.COMPLETED

        books = order_books(order_id=order.pk)
        assert books.paid == order.paid_amount
        assert books.fee == _expected_fee(case, order.paid_amount)
        assert books.cost == cost
        _assert_books_hold(order, books)

        for share in case["refunds"]:
            left = order.paid_amount - order.refunded_amount
            amount = (left * share / 100).quantize(FEN)
            if D("0.01") <= amount < left:
                refund_order(order=order, amount=amount, reason="部分退款")
                order = Order.objects.get(pk=order.pk)
                _assert_books_hold(order, order_books(order_id=order.pk))
        if case["full_refund"]:
            refund_order(order=order, amount=order.paid_amount - order.refunded_amount, reason="全部退款")
            order = Order.objects.get(pk=order.pk)
            books = order_books(order_id=order.pk)
            _assert_books_hold(order, books)
            kept = D("0.00") if case["fee_refunded"] else _expected_fee(case, order.paid_amount)
            balances = {key: value for key, value in _signed_by_account(order).items() if value}
            expected = {("gateway_fees", None): kept, ("merchant_profit", None): -kept} if kept else {}
            assert balances == expected
        report = ledger_differences()
        assert report["accounts"] == [] and report["transactions"] == []
        transaction.set_rollback(True)
