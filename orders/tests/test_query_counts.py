"""Queries per pipeline stage, pinned so they cannot creep up unnoticed.

The budgets are the counts measured when they were last cut (inside the test's transaction,
so each service's own transaction shows as a savepoint pair): checkout 11, callback 9,
fulfilment 17 with its after-commit work (was 18 without it: the unlocked read before the row
lock, the second lock of the same row per part and the re-read after the commit are gone), a
replayed callback 5, a repeated fulfilment 3. An attributed order adds the distribution
look-ups at checkout (16) and the commission split inside the delivery transaction (38); the
``order_completed`` receiver no longer repeats the split after the commit. The risk check
at checkout adds one statement (the velocity/limit aggregate, the recorded signal and the
distributor's day total together; it was two): checkout 12, attributed checkout 17. The distribution sales rollup (a post_save receiver
on the order) recomputes the seller's day row and the upline's team totals on every saved
status change of an attributed order: callback 21 and fulfilment 52 for an attributed order
(12 and 14 of them the rollup; cutting that is the next performance step).
"""

import pytest

from commissions.models import Commission
from commissions.tests.factories import make_chain
from distribution.services.referrals import create_referral_link
from orders.services import fulfil_order, place_order, record_payment_notification

from .factories import add_keys, buy, make_product, pay, sandbox_notification


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

    _stages(product, django_assert_max_num_queries, django_capture_on_commit_callbacks, budgets=(12, 9, 17))


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
        budgets=(17, 21, 52),
        referral=referral,
    )

    assert Commission.objects.filter(order=order).count() == 3
