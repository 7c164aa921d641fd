"""Queries per pipeline stage, pinned so they cannot creep up unnoticed.

Measured inside the test's transaction (a service's own transaction shows as a savepoint pair
where it takes one). Most are prepared statements (``kamen.db.execute_prepared``).

A plain card-key order: checkout 6 (the product's custom fields, the risk check, the order,
the reservation), callback 8 (the order locked, "seen before?", its move to paid with the
status-change row in one statement, the paid attempt upserted, the reservation held, the
callback stored), fulfilment 5 (the order locked, the reservation sold with its deliveries in
one statement, the move paid → fulfilling → completed with the e-mail claimed in the same
write); a replayed callback 5, a repeated fulfilment 3.

An order through a referral link: checkout 8 (+ the link, its distributor, the depth and the
upline in one statement; + the link's order counter), callback 10 (+ the sales rollup: the
tree lock and one upsert of the day and the team totals), fulfilment 7 (+ the commission
split: its inputs in one statement, its rows and ledger posting in another).

History: 13/9/17 and 18/21/52 (attributed) before the rollup and the split were cut; then
6/9/8 and 10/11/17; then 6/8/5 and 8/10/7.
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
    buy(product, contact="warm@example.com")  # warm caches (content types, permissions)

    _stages(product, django_assert_max_num_queries, django_capture_on_commit_callbacks, budgets=(6, 8, 5))


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
        budgets=(8, 10, 7),
        referral=referral,
    )

    assert Commission.objects.filter(order=order).count() == 3
