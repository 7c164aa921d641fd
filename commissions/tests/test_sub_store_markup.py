"""A distributor's price is their price, whichever of their links the buyer followed (ADR
0012): with an open sub-store, an order through their ordinary referral link is a sale of that
store, like one through the store's own link — same price, same 差价, same commissions."""

from decimal import Decimal

import pytest

from commissions.models import Commission, CommissionKind
from commissions.selectors import ledger_differences
from distribution.models import SubStore
from distribution.services import save_sub_store, set_sub_store_price
from distribution.services.referrals import create_referral_link
from orders.services import fulfil_order
from orders.tests.factories import add_keys, buy, make_product, pay

from .factories import make_chain

BUYER = "same-buyer@example.com"


def _sold_through(link, product, django_capture_on_commit_callbacks):
    order = buy(product, contact=BUYER, referral={"code": link.code, "channel": "wechat"})
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)
    fulfil_order(order_id=order.pk)
    order.refresh_from_db()
    lines = sorted(
        (row.beneficiary_id, row.kind, row.level, row.amount) for row in Commission.objects.filter(order=order)
    )
    return order, lines


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("store_price", "is_open", "paid", "difference"),
    [
        ("115.00", True, "115.00", "35.00"),  # above retail: the markup is the seller's
        ("100.00", True, "100.00", "20.00"),  # at retail
        ("90.00", True, "90.00", "10.00"),  # a discount from their own margin
        (None, True, "100.00", "20.00"),  # no price set: retail, as the store shows it
        ("115.00", False, "100.00", None),  # a closed store sells nothing: retail, commission only
    ],
)
def test_the_sub_store_link_and_an_ordinary_referral_link_sell_and_pay_the_same(
    django_capture_on_commit_callbacks, store_price, is_open, paid, difference
):
    # given a seller (cost 80 = 80 % of retail) with a sub-store, its link and an ordinary link
    seller, parent = make_chain(2, rates=(1000, 500, 0))
    product = make_product(price="100.00", cost_price=Decimal("60.00"), max_resale_price=Decimal("120.00"))
    add_keys(product, 2)
    store = save_sub_store(distributor=seller, name="小店", slug="little-shop")
    if store_price is not None:
        set_sub_store_price(distributor=seller, product=product, price=store_price)
    SubStore.objects.filter(pk=store.pk).update(is_open=is_open)
    store_link = store.links.get()
    ordinary_link = create_referral_link(distributor=seller, channel="wechat")

    # when the same buyer buys the same product once through each
    by_store, store_lines = _sold_through(store_link, product, django_capture_on_commit_callbacks)
    by_link, link_lines = _sold_through(ordinary_link, product, django_capture_on_commit_callbacks)

    # then both orders cost the same and pay the same people the same amounts
    assert by_store.paid_amount == by_link.paid_amount == Decimal(paid)
    assert store_lines == link_lines
    differences = [line for line in link_lines if line[1] == CommissionKind.PRICE_DIFFERENCE]
    if difference is None:
        assert differences == []
    else:
        assert differences == [(seller.pk, CommissionKind.PRICE_DIFFERENCE, 1, Decimal(difference))]
    report = ledger_differences()
    assert report["accounts"] == [] and report["transactions"] == []
