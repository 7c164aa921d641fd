"""Property-based: random chains, rule sets, orders, partial refunds and settlements."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commissions import selectors
from commissions.models import BASIS_POINTS, Commission, CommissionBase, JournalEntry
from commissions.services import (
    get_policy,
    reverse_commissions,
    run_settlement,
    split_commissions,
)
from distribution.models import DistributionSettings

from .factories import make_chain, make_order, refund

fen = st.integers(min_value=1, max_value=99_999_99).map(
    lambda cents: Decimal(cents) / 100
)

order_strategy = st.tuples(
    fen,  # paid
    st.integers(min_value=0, max_value=100),  # cost as a percentage of paid
    st.lists(
        st.integers(min_value=1, max_value=100), max_size=3
    ),  # partial refunds, % of what is left
    st.booleans(),  # settle before refunding
)


@pytest.mark.django_db
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    depth=st.integers(min_value=1, max_value=3),
    levels=st.integers(min_value=1, max_value=3),
    rates=st.tuples(*[st.integers(min_value=0, max_value=4000)] * 3),
    base=st.sampled_from([CommissionBase.PAID, CommissionBase.MARGIN]),
    order_cap_bp=st.integers(min_value=0, max_value=BASIS_POINTS),
    margin_cap_bp=st.integers(min_value=0, max_value=BASIS_POINTS),
    orders=st.lists(order_strategy, min_size=1, max_size=3),
)
def test_books_balance_caps_hold_settlement_is_idempotent_and_full_refunds_return_to_zero(
    depth, levels, rates, base, order_cap_bp, margin_cap_bp, orders
):
    with transaction.atomic():
        chain = make_chain(levels, rates=rates)
        DistributionSettings.objects.filter(pk=1).update(commission_depth=depth)
        policy = get_policy()
        policy.base, policy.max_order_share_bp, policy.max_margin_share_bp = (
            base,
            order_cap_bp,
            margin_cap_bp,
        )
        policy.save()
        later = timezone.now() + timedelta(days=30)
        made = []
        for index, (paid, cost_pct, refunds, settle_first) in enumerate(orders):
            cost = (paid * cost_pct / 100).quantize(Decimal("0.01"))
            order = make_order(chain[0], paid=paid, cost=cost)
            commissions = split_commissions(order=order)
            total = sum((c.amount for c in commissions), Decimal("0.00"))
            base_amount = paid if base == CommissionBase.PAID else paid - cost
            # splits and the merchant's remainder make up the base exactly; no cap is exceeded
            assert Decimal("0.00") <= base_amount - total <= base_amount
            assert total <= (paid * order_cap_bp / BASIS_POINTS)
            assert total <= ((paid - cost) * margin_cap_bp / BASIS_POINTS)
            assert len(commissions) <= min(depth, levels)
            if settle_first:
                first = run_settlement(cycle="daily", now=later, key=f"p:{index}")
                again = run_settlement(cycle="daily", now=later, key=f"p:{index}")
                assert (first.pk, first.total_amount) == (again.pk, again.total_amount)
            for percent in refunds:
                left = order.paid_amount - order.refunded_amount
                amount = (left * percent / 100).quantize(Decimal("0.01"))
                if amount > 0:
                    reverse_commissions(order=refund(order, amount))
            made.append(order)

        report = selectors.ledger_differences()
        assert report["accounts"] == [] and report["transactions"] == []
        outstanding = Commission.objects.aggregate(total=Sum("amount"))[
            "total"
        ] or Decimal("0.00")
        assert outstanding >= 0

        for order in made:
            left = order.paid_amount - order.refunded_amount
            if left > 0:
                refund(order, left)
            reverse_commissions(order=order)
        for distributor in chain:
            assert set(selectors.wallet(distributor).values()) == {Decimal("0.00")}
        assert selectors.ledger_differences()["accounts"] == []
        assert JournalEntry.objects.exists() == Commission.objects.exists()
        transaction.set_rollback(True)
