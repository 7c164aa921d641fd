"""Statements per pipeline stage, pinned so they cannot creep up unnoticed.

Counted are statements, each as Django logs it; those that go to the server together in one
round trip (psycopg's pipeline mode, ``kamen.db.fetch_rows_in_one_round_trip``) are named
below. Measured inside the test's transaction, where a service's own transaction shows as a
savepoint pair; in production that pair is a BEGIN / COMMIT, and checkout's one-statement
order has neither. Counted after a warm-up order (caches filled, statements prepared).

A plain card-key order: checkout 5 (the product's custom fields, the risk check, then in one
statement the keys picked, the order inserted and the keys reserved for it: 3 round trips in
production); callback 9 (11 with the books below), 4 round trips (the order locked and, with a fresh snapshot, read with
any stored copy of the callback: one round trip; then the move to paid with its status-change
row, the paid attempt, the reservation held, the callback stored and its id read back: one);
fulfilment 5 (the order locked, the reservation sold with its deliveries in one statement,
the move paid → fulfilling → completed with the e-mail claimed in the same write); a
replayed callback 5, a repeated fulfilment 3.

An order through a referral link: checkout 6 (+ the link, its distributor, the depth and the
upline in one statement; the link's order counter joins the order's statement), callback 11,
still 4 round trips (the sales rollup's tree lock and upsert join the move's round trip,
through ``distribution.services.sales.order_sale_statements``), fulfilment 7, 6 round trips (+ the commission split:
its inputs read in the move's round trip, its rows and ledger posting in one statement).

The order books (issue 18, docs/adr/0020) add 2 statements to the callback (the merchant
accounts ensured and the payment posted, in the move's round trip) and 2 to a fulfilment (the
accounts ensured and the cost of goods and profit posted: in the move's round trip for an
unattributed order, one more round trip after the split for an attributed one): 5/11/7 and
6/13/9.
"""

import pytest

from commissions.models import Commission
from commissions.tests.factories import make_chain
from distribution.services.referrals import create_referral_link
from orders.services import fulfil_order, place_order, record_payment_notification
from riskcontrol import rules as risk_rules

from .factories import add_keys, buy, make_product, pay, sandbox_notification


@pytest.fixture(autouse=True)
def _risk_rules_stay_cached(monkeypatch):
    """The merchant's risk rules are cached for a few seconds; on a slow machine the cache could
    lapse between the warm-up order and the measured one and add its reload to the count."""
    monkeypatch.setattr(risk_rules, "CACHE_SECONDS", 3600)
    risk_rules.clear_rule_cache()
    yield
    risk_rules.clear_rule_cache()


def _stages(product, assert_max, capture_on_commit, *, budgets, **checkout):
    checkout_budget, callback_budget, fulfil_budget = budgets
    with assert_max(checkout_budget):
        order = place_order(product=product, quantity=2, contact="a@example.com", query_password="pass1234", **checkout)

    body, headers = sandbox_notification(order)
    with assert_max(callback_budget):
        result = record_payment_notification(gateway_code="sandbox", body=body, headers=headers)
    assert result.accepted

    with assert_max(fulfil_budget), capture_on_commit(execute=True):
        fulfil_order(order_id=order.pk)

    with assert_max(5):
        record_payment_notification(gateway_code="sandbox", body=body, headers=headers)
    with assert_max(3):
        fulfil_order(order_id=order.pk)
    return order


@pytest.mark.django_db
def test_queries_per_stage(django_assert_max_num_queries, django_capture_on_commit_callbacks):
    product = make_product()
    add_keys(product, 5)
    warm = buy(product, contact="warm@example.com")  # warm caches; statements prepared
    pay(warm)
    fulfil_order(order_id=warm.pk)

    _stages(product, django_assert_max_num_queries, django_capture_on_commit_callbacks, budgets=(5, 11, 7))


@pytest.mark.django_db
def test_queries_per_stage_of_an_attributed_order(django_assert_max_num_queries, django_capture_on_commit_callbacks):
    product = make_product()
    add_keys(product, 5)
    seller, _parent, _grandparent = make_chain(3)
    referral = {"code": create_referral_link(distributor=seller, channel="wechat").code, "channel": "wechat"}
    warm = buy(product, contact="warm@example.com", referral=referral)  # accounts and policy exist
    pay(warm)
    fulfil_order(order_id=warm.pk)

    order = _stages(
        product,
        django_assert_max_num_queries,
        django_capture_on_commit_callbacks,
        budgets=(6, 13, 9),
        referral=referral,
    )

    assert Commission.objects.filter(order=order).count() == 3
    # The sale reached the rollup through the callback's own message, once.
    from distribution.tests.test_sales_rollup import assert_rollup_matches_orders

    assert_rollup_matches_orders()


@pytest.mark.django_db(transaction=True)
def test_starting_a_payment_is_three_round_trips_and_a_second_start_keeps_the_first():
    """The attempt recorded, the sandbox's payment created, the attempt given its trade number:
    one statement each, no transaction of their own (outside a test's transaction, as in
    production). Starting again (the buyer's 去支付 on the order page) sends the buyer to the
    same cashier and records nothing new."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orders.models import PaymentAttempt, SandboxPayment
    from orders.services import start_payment

    from .factories import NOTIFY_URL

    product = make_product()
    add_keys(product, 2)
    order = buy(product)

    with CaptureQueriesContext(connection) as first_queries:
        first = start_payment(order=order, notify_url=NOTIFY_URL)
    second = start_payment(order=order, notify_url=NOTIFY_URL)

    assert [query["sql"].split()[0] for query in first_queries.captured_queries] == ["INSERT", "INSERT", "UPDATE"]
    assert second.redirect_url == first.redirect_url
    assert PaymentAttempt.objects.filter(out_trade_no=order.order_no).count() == 1
    assert SandboxPayment.objects.get(out_trade_no=order.order_no).trade_no == first.gateway_trade_no
    assert PaymentAttempt.objects.get(out_trade_no=order.order_no).gateway_trade_no == first.gateway_trade_no
