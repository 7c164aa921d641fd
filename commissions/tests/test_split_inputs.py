"""The split's inputs read in one statement (PostgreSQL) plan exactly as the ORM look-ups do,
and a caller that holds the order's lock is not locked again."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commissions.models import (
    BASIS_POINTS,
    Campaign,
    CommissionBase,
    CommissionKind,
    CommissionRule,
    CommissionTier,
    ProductBonus,
    RuleMode,
    TierMode,
    TierPeriod,
)
from commissions.services import get_policy, split_commissions
from commissions.services.split import (
    _accrual_accounts,
    _read_inputs,
    plan_split,
)
from distribution.models import DistributionSettings
from orders.models import Order

from .factories import GradeFactory, ProductFactory, make_chain, make_order


BANDS = [(Decimal("0.00"), Decimal("100.00"), 800), (Decimal("100.00"), None, 1200)]


def _both_plans(order):
    """(the plan from the one-statement inputs, the plan from the ORM look-ups)."""
    moment = order.paid_at
    inputs = _read_inputs(order)
    assert inputs.rules is not None  # the one-statement path ran, not the first-use fallback
    fast = plan_split(
        order,
        policy=inputs.policy,
        depth=inputs.depth,
        bonus_bp=inputs.bonus_bp,
        distributors=inputs.distributors,
        rules=inputs.rules,
        multiplier=inputs.multiplier,
        tiers=inputs.tiers,
        now=moment,
    )
    return fast, plan_split(order, now=moment)


def _campaign(product, multiplier_bp, *, running=True):
    now = timezone.now()
    start = now - timedelta(days=1) if running else now + timedelta(days=1)
    return Campaign.objects.create(
        name="活动",
        product=product,
        multiplier_bp=multiplier_bp,
        starts_at=start,
        ends_at=start + timedelta(days=2),
    )


@pytest.mark.django_db
def test_the_one_statement_inputs_plan_like_the_orm_on_a_varied_setup():
    other = GradeFactory(commission_level1_bp=700, commission_level2_bp=300, commission_level3_bp=100)
    seller, parent, grandparent = make_chain(3, rates=(1000, 500, 200))
    parent.grade = other
    parent.save()
    product = ProductFactory(retail_price=Decimal("100.00"), cost_price=Decimal("20.00"))
    CommissionRule.objects.create(product=product, grade=seller.grade, level=1, rate_bp=1500)
    CommissionRule.objects.create(product=product, level=2, mode=RuleMode.FIXED, fixed_amount=Decimal("1.50"))
    CommissionRule.objects.create(grade=other, level=2, rate_bp=900)
    CommissionRule.objects.create(level=3, rate_bp=250)
    CommissionRule.objects.create(product=ProductFactory(), level=3, rate_bp=4000)  # another product
    _campaign(product, 15000)
    _campaign(None, 12000)
    _campaign(None, 30000, running=False)
    CommissionTier.objects.bulk_create(
        [CommissionTier(grade=seller.grade, lower_bound=lo, upper_bound=up, rate_bp=rate) for lo, up, rate in BANDS]
    )
    ProductBonus.objects.create(product=product, bonus_bp=300)
    policy = get_policy()
    policy.max_order_share_bp = 2000  # the lines are capped
    policy.save()
    order = make_order(seller, paid="200.00", cost="40.00", product=product, quantity=2)

    fast, orm = _both_plans(order)

    assert fast == orm
    lines, _base, computed, reason = fast
    assert reason and computed > sum(line.amount for line in lines)
    assert {line.kind for line in lines} == {CommissionKind.LEVEL, CommissionKind.BONUS}
    assert "1.5" in lines[0].description  # the product rule, times the product's campaign


@pytest.mark.django_db
def test_a_general_rule_leaves_the_seller_to_the_tiers_in_both_paths():
    seller, _parent = make_chain(2, rates=(1000, 500, 0))
    CommissionTier.objects.bulk_create(
        [CommissionTier(grade=None, lower_bound=lo, upper_bound=up, rate_bp=rate) for lo, up, rate in BANDS]
    )
    get_policy()
    make_order(seller, paid="80.00", cost="0.00")  # earlier sales this month
    order = make_order(seller, paid="40.00", cost="0.00")

    fast, orm = _both_plans(order)

    assert fast == orm
    assert "阶梯佣金" in fast[0][0].description


@pytest.mark.django_db
def test_the_read_accounts_are_the_ones_the_orm_finds():
    chain = make_chain(3)
    split_commissions(order=make_order(chain[0]))  # the accounts exist from now on
    order = make_order(chain[0])

    inputs = _read_inputs(order)

    revenue, pending = _accrual_accounts(d.pk for d in chain)
    assert inputs.revenue_account_id == revenue.pk
    assert inputs.pending_account_ids == {pk: account.pk for pk, account in pending.items()}


rule_keys = st.tuples(
    st.sampled_from(["none", "this", "other"]),  # product
    st.sampled_from(["none", "a", "b"]),  # grade
    st.integers(min_value=1, max_value=3),  # level
)
rule_values = st.tuples(st.booleans(), st.integers(min_value=0, max_value=4000), st.integers(0, 500))


@pytest.mark.django_db
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    grade_rates=st.lists(st.tuples(*[st.integers(0, 4000)] * 3), min_size=2, max_size=2),
    chain_grades=st.tuples(*[st.sampled_from("ab")] * 3),
    levels=st.integers(1, 3),
    depth=st.integers(1, 3),
    rules=st.dictionaries(rule_keys, rule_values, max_size=8),
    campaigns=st.lists(
        st.tuples(st.sampled_from(["none", "this", "other"]), st.integers(10000, 50000), st.booleans()),
        max_size=3,
    ),
    tiers=st.sampled_from(["none", "general", "grade", "both"]),
    bonus=st.one_of(st.none(), st.tuples(st.integers(1, 3000), st.booleans())),
    base=st.sampled_from([CommissionBase.PAID, CommissionBase.MARGIN]),
    caps=st.tuples(st.integers(0, BASIS_POINTS), st.integers(0, BASIS_POINTS)),
    tier_mode=st.sampled_from([TierMode.WHOLE, TierMode.MARGINAL]),
    tier_period=st.sampled_from(TierPeriod.values),
    paid_cents=st.integers(1, 10_000_00),
    cost_percent=st.integers(0, 100),
    quantity=st.integers(1, 3),
    earlier_sales=st.integers(0, 2),
    buyer=st.sampled_from(["guest", "self_purchase", "sub_store", "sub_store_snapshot"]),
    self_purchase_earns=st.booleans(),
)
def test_the_one_statement_inputs_plan_like_the_orm(
    grade_rates,
    chain_grades,
    levels,
    depth,
    rules,
    campaigns,
    tiers,
    bonus,
    base,
    caps,
    tier_mode,
    tier_period,
    paid_cents,
    cost_percent,
    quantity,
    earlier_sales,
    buyer,
    self_purchase_earns,
):
    with transaction.atomic():
        grades = {
            name: GradeFactory(
                commission_level1_bp=rates[0], commission_level2_bp=rates[1], commission_level3_bp=rates[2]
            )
            for name, rates in zip("ab", grade_rates, strict=True)
        }
        chain = make_chain(levels, grade=grades[chain_grades[0]])
        for distributor, grade in zip(chain[1:], chain_grades[1:], strict=False):
            distributor.grade = grades[grade]
            distributor.save()
        DistributionSettings.objects.filter(pk=1).update(commission_depth=depth)
        products = {"none": None, "this": ProductFactory(), "other": ProductFactory()}
        for (product, grade, level), (is_fixed, rate_bp, fixed_yuan) in rules.items():
            fixed = is_fixed and product != "none"
            CommissionRule.objects.create(
                product=products[product],
                grade=grades.get(grade),
                level=level,
                mode=RuleMode.FIXED if fixed else RuleMode.PERCENT,
                rate_bp=0 if fixed else rate_bp,
                fixed_amount=Decimal(fixed_yuan) / 10 if fixed else Decimal("0.00"),
            )
        for product, multiplier_bp, running in campaigns:
            _campaign(products[product], multiplier_bp, running=running)
        tier_grades = {"none": [], "general": [None], "grade": [grades["a"]], "both": [None, grades["a"]]}[tiers]
        for grade in tier_grades:
            CommissionTier.objects.bulk_create(
                [CommissionTier(grade=grade, lower_bound=lo, upper_bound=up, rate_bp=rate) for lo, up, rate in BANDS]
            )
        if bonus is not None:
            ProductBonus.objects.create(product=products["this"], bonus_bp=bonus[0], is_active=bonus[1])
        policy = get_policy()
        policy.base, policy.tier_mode, policy.tier_period = base, tier_mode, tier_period
        policy.max_order_share_bp, policy.max_margin_share_bp = caps
        policy.self_purchase_earns = self_purchase_earns
        policy.save()
        seller, upline = chain[0], [d.pk for d in chain[1:]]
        paid = Decimal(paid_cents) / 100
        for _n in range(earlier_sales):
            make_order(seller, paid="60.00", cost="0.00", product=products["other"])
        attribution = {"distributor_id": seller.pk, "chain": upline, "sub_store": None}
        if buyer == "self_purchase":
            attribution["self_purchase"] = True
        elif buyer.startswith("sub_store"):
            attribution["sub_store"] = 1
            if buyer == "sub_store_snapshot":
                attribution["seller_unit_cost"] = str((paid / quantity / 2).quantize(Decimal("0.01")))
        order = make_order(
            seller,
            paid=paid,
            cost=(paid * cost_percent / 100).quantize(Decimal("0.01")),
            product=products["this"],
            quantity=quantity,
            attribution=attribution,
        )

        fast, orm = _both_plans(order)

        assert fast == orm
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_caller_holding_the_order_lock_is_not_locked_again():
    seller, *_rest = make_chain(3)
    split_commissions(order=make_order(seller))  # the accounts exist from now on
    order_id = make_order(seller).pk

    with transaction.atomic():
        locked = Order.objects.select_for_update().select_related("product").get(pk=order_id)
        with CaptureQueriesContext(connection) as queries:
            commissions = split_commissions(order=locked, order_is_locked=True)

    assert [(c.level, c.amount) for c in commissions] == [
        (1, Decimal("10.00")),
        (2, Decimal("5.00")),
        (3, Decimal("2.00")),
    ]
    assert len(queries.captured_queries) == 2  # the inputs; the rows with their journal
    assert not [q for q in queries.captured_queries if "FOR UPDATE" in q["sql"].upper()]
    assert split_commissions(order=locked) == commissions  # a second call pays once


@pytest.mark.django_db(transaction=True)
def test_order_is_locked_outside_a_transaction_is_refused():
    seller, *_rest = make_chain(1)
    order = make_order(seller)

    with pytest.raises(RuntimeError, match="transaction"):
        split_commissions(order=order, order_is_locked=True)

    assert not order.commissions.exists()
