"""Upline commissions on a stock purchase (进货) follow the merchant's rule — none, or on each
upline's margin (the purchase's price minus what the same keys cost the upline) at their grade's
level rate — never above the caps, never more than 3 levels above the buyer; booked through the
ledger, and the purchase's books (payment, cost, commissions, profit) balance (issue 18 §2)."""

from decimal import Decimal

import pytest

from catalog.models import CardKeyBatch
from commissions import selectors as commission_selectors
from commissions.models import Commission, CommissionKind, JournalEntry
from commissions.selectors import ledger_differences
from commissions.services import get_policy
from commissions.tests.test_withdrawals import _fund
from distribution.models import DistributionSettings
from distribution.tests.factories import DistributorFactory, GradeFactory
from orders.services import purchase_stock

from .factories import add_keys, make_product

D = Decimal


def _product():
    product = make_product(price="100.00", cost_price=D("40.00"))
    keys = add_keys(product, 10, prefix="UPLINE")
    CardKeyBatch.objects.filter(pk=keys[0].batch_id).update(unit_cost=D("40.00"))
    return product


def _network(levels_above=3):
    """Great-grandparent (50 % of retail) → grandparent (60 %) → parent (70 %) → buyer (80 %):
    the rates 10 % / 20 % / 50 % for level 3 / 2 / 1, only what each grade's level pays."""
    grades = [
        GradeFactory(wholesale_discount_bp=5000, commission_level3_bp=1000),
        GradeFactory(wholesale_discount_bp=6000, commission_level2_bp=2000, commission_level3_bp=1000),
        GradeFactory(wholesale_discount_bp=7000, commission_level1_bp=5000, commission_level2_bp=2000),
    ][3 - levels_above :]
    DistributionSettings.objects.get_or_create(pk=1)
    parent, upline = None, []
    for grade in grades:
        parent = DistributorFactory(parent=parent, grade=grade)
        upline.append(parent)
    buyer = DistributorFactory(parent=parent, grade=GradeFactory(wholesale_discount_bp=8000, may_buy_stock=True))
    _fund(buyer, "1000.00")
    return buyer, list(reversed(upline))  # nearest first


def _margin_rule(**caps):
    policy = get_policy()
    policy.stock_commission_mode = "margin"
    for name, value in caps.items():
        setattr(policy, name, value)
    policy.save()


def _earned(purchase) -> dict[int, D]:
    return dict(
        Commission.objects.filter(stock_purchase=purchase, kind=CommissionKind.STOCK).values_list(
            "beneficiary_id", "amount"
        )
    )


def _purchase_lines(purchase) -> dict[str, D]:
    """The merchant lines of everything the purchase posted, signed (credit − debit)."""
    sums: dict[str, D] = {}
    references = [f"wallet:stock:{purchase.purchase_no}", f"stock-commission:{purchase.purchase_no}"]
    references.append(f"books:stock:{purchase.purchase_no}")
    for entry in JournalEntry.objects.filter(transaction__reference__in=references).select_related("account"):
        if entry.account.distributor_id is None:
            sums[entry.account.kind] = sums.get(entry.account.kind, D("0.00")) + entry.signed_amount
    return {kind: amount for kind, amount in sums.items() if amount}


@pytest.mark.django_db
def test_by_default_the_upline_earns_nothing_and_the_merchant_keeps_price_minus_cost():
    buyer, upline = _network()
    product = _product()

    purchase = purchase_stock(distributor_id=buyer.pk, product=product, quantity=2, token="none")

    assert purchase.total_amount == D("160.00")
    assert _earned(purchase) == {}
    assert _purchase_lines(purchase) == {"supplier_cost": D("80.00"), "merchant_profit": D("80.00")}


@pytest.mark.django_db
def test_on_the_margin_each_upline_earns_its_rate_of_its_own_margin_and_the_books_balance():
    buyer, (parent, grandparent, great) = _network()
    product = _product()
    _margin_rule()

    purchase = purchase_stock(distributor_id=buyer.pk, product=product, quantity=2, token="margin")

    # 2 keys at ¥80: the parent's margin 160 − 140 = 20 × 50 %, the grandparent's 40 × 20 %,
    # the great-grandparent's 60 × 10 %.
    assert _earned(purchase) == {parent.pk: D("10.00"), grandparent.pk: D("8.00"), great.pk: D("6.00")}
    assert commission_selectors.wallet(parent)["pending"] == D("10.00")
    assert _purchase_lines(purchase) == {
        "supplier_cost": D("80.00"),
        "merchant_profit": D("56.00"),  # 160 − 80 cost − 24 commissions
    }
    report = ledger_differences()
    assert report["accounts"] == [] and report["transactions"] == []


@pytest.mark.django_db
def test_an_upline_whose_own_price_is_not_lower_earns_nothing():
    buyer, (parent, grandparent, great) = _network()
    type(parent.grade).objects.filter(pk=parent.grade_id).update(wholesale_discount_bp=8000)
    product = _product()
    _margin_rule()

    purchase = purchase_stock(distributor_id=buyer.pk, product=product, quantity=2, token="flat")

    assert _earned(purchase) == {grandparent.pk: D("8.00"), great.pk: D("6.00")}


@pytest.mark.django_db
def test_the_commissions_never_exceed_the_merchants_cap_on_the_margin():
    buyer, (parent, grandparent, great) = _network()
    product = _product()
    _margin_rule(max_margin_share_bp=2000)  # 20 % of the merchant's margin 160 − 80: ¥16

    purchase = purchase_stock(distributor_id=buyer.pk, product=product, quantity=2, token="cap")
    earned = _earned(purchase)

    assert sum(earned.values()) <= D("16.00")
    assert earned == {parent.pk: D("6.66"), grandparent.pk: D("5.33"), great.pk: D("4.00")}
    assert "按佣金上限调整" in Commission.objects.get(beneficiary=parent).rule_description
    assert _purchase_lines(purchase)["merchant_profit"] == D("160.00") - D("80.00") - D("15.99")


@pytest.mark.django_db
def test_the_commissions_never_exceed_the_merchants_cap_on_the_payment():
    buyer, _upline = _network()
    product = _product()
    _margin_rule(max_order_share_bp=500)  # 5 % of ¥160: ¥8

    purchase = purchase_stock(distributor_id=buyer.pk, product=product, quantity=2, token="paidcap")

    assert D("7.97") <= sum(_earned(purchase).values()) <= D("8.00")


@pytest.mark.django_db
def test_the_merchants_depth_cuts_the_levels():
    buyer, (parent, grandparent, _great) = _network()
    DistributionSettings.objects.filter(pk=1).update(commission_depth=2)
    product = _product()
    _margin_rule()

    purchase = purchase_stock(distributor_id=buyer.pk, product=product, quantity=2, token="depth")

    assert _earned(purchase) == {parent.pk: D("10.00"), grandparent.pk: D("8.00")}


@pytest.mark.django_db
def test_never_more_than_three_levels_above_the_buyer():
    buyer, upline = _network()
    top = upline[-1]
    above = DistributorFactory(grade=GradeFactory(wholesale_discount_bp=5000, commission_level3_bp=5000))
    type(top).objects.filter(pk=top.pk).update(parent=above)
    product = _product()
    _margin_rule()

    purchase = purchase_stock(distributor_id=buyer.pk, product=product, quantity=2, token="four")

    assert purchase.upline == [member.pk for member in upline]
    assert above.pk not in _earned(purchase)
    assert set(Commission.objects.filter(stock_purchase=purchase).values_list("level", flat=True)) == {1, 2, 3}
