"""The whole chain, through every app's real services: a buyer follows a distributor's
referral link, pays through the sandbox gateway, the keys are delivered, and the upline is paid
in the same transaction; a refund reverses it all. Nothing is built by hand on the order."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from commissions.models import Commission
from commissions.selectors import ledger_differences, wallet
from distribution.services.referrals import create_referral_link
from orders.models import OrderStatus
from orders.services import fulfil_order
from orders.services.refunds import refund_order
from orders.tests.factories import add_keys, buy, make_product, pay

from .factories import make_chain


@pytest.fixture
def seller_chain(db):
    seller, parent, grandparent = make_chain(3, rates=(1000, 500, 200))
    link = create_referral_link(distributor=seller, channel="wechat")
    return seller, parent, grandparent, link


@pytest.mark.django_db
def test_a_referred_sale_pays_three_levels_once_and_a_refund_takes_it_back(seller_chain, django_capture_on_commit_callbacks):
    seller, parent, grandparent, link = seller_chain
    product = make_product(price="100.00", cost_price=Decimal("60.00"))
    add_keys(product, 2)

    # given a buyer who arrived through the seller's WeChat link
    order = buy(product, referral={"code": link.code, "channel": "wechat"})
    assert order.distributor_id == seller.pk
    assert order.attribution["chain"] == [parent.pk, grandparent.pk]

    # when it is paid and fulfilled (and the task runs a second time)
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)
    fulfil_order(order_id=order.pk)
    fulfil_order(order_id=order.pk)

    # then each level above the buyer earned once, pending, and the books balance
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    rows = Commission.objects.filter(order=order)
    assert sorted((row.beneficiary_id, row.level) for row in rows) == sorted(
        [(seller.pk, 1), (parent.pk, 2), (grandparent.pk, 3)]
    )
    assert wallet(seller)["pending"] > 0
    assert ledger_differences()["accounts"] == []
    assert ledger_differences()["transactions"] == []

    # when the whole order is refunded
    with django_capture_on_commit_callbacks(execute=True):
        refund_order(order=order, amount=order.paid_amount, reason="买家申请退款")

    # then every distributor is back to zero and the ledger still balances
    for distributor in (seller, parent, grandparent):
        assert sum(wallet(distributor).values()) == Decimal("0.00")
    assert ledger_differences()["accounts"] == []
    assert ledger_differences()["transactions"] == []


@pytest.mark.django_db
def test_an_unattributed_sale_touches_no_commission_tables():
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)

    with CaptureQueriesContext(connection) as queries:
        fulfil_order(order_id=order.pk)

    assert not Commission.objects.filter(order=order).exists()
    # only the order's own books (cost of goods and profit, docs/adr/0020) reach the ledger:
    # the merchant accounts ensured and the posting, in the move's round trip
    touched = [query["sql"] for query in queries.captured_queries if "commissions_" in query["sql"]]
    assert not any("commissions_commission" in sql for sql in touched)
    assert len(touched) <= 2
