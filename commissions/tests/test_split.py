from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from commissions import selectors
from commissions.models import (
    AccountKind,
    Campaign,
    CapEvent,
    Commission,
    CommissionBase,
    CommissionKind,
    CommissionRule,
    JournalEntry,
    ProductBonus,
    RuleMode,
    RuleTrigger,
)
from commissions.services import (
    get_policy,
    save_campaign,
    save_commission_rule,
    split_commissions,
)
from commissions.services.ledger import distributor_account, merchant_account
from distribution.models import DistributionSettings

from .factories import GradeFactory, ProductFactory, make_chain, make_order


@pytest.mark.django_db
def test_an_order_pays_each_level_of_its_snapshot_chain_by_grade_rates():
    seller, parent, grandparent = make_chain(3, rates=(1000, 500, 200))
    order = make_order(seller, paid="100.00")

    commissions = split_commissions(order=order)

    assert [(c.level, c.beneficiary_id, c.amount) for c in commissions] == [
        (1, seller.pk, Decimal("10.00")),
        (2, parent.pk, Decimal("5.00")),
        (3, grandparent.pk, Decimal("2.00")),
    ]
    assert selectors.wallet(seller)["pending"] == Decimal("10.00")
    assert merchant_account(AccountKind.MERCHANT_REVENUE).balance == Decimal("-17.00")
    line = commissions[0]
    assert (line.order_id, line.level, line.rate_bp) == (order.pk, 1, 1000)
    assert "第 1 级" in line.rule_description


@pytest.mark.django_db
def test_splitting_twice_returns_the_same_rows_and_posts_once():
    seller, *_rest = make_chain(3)
    order = make_order(seller)

    first = split_commissions(order=order)
    second = split_commissions(order=order)

    assert [c.pk for c in first] == [c.pk for c in second]
    assert Commission.objects.count() == 3
    assert JournalEntry.objects.count() == 4


@pytest.mark.django_db
def test_the_split_reads_the_snapshot_not_the_live_tree():
    seller, _parent, grandparent = make_chain(3)
    order = make_order(
        seller, chain=[grandparent.pk]
    )  # the chain as it was at checkout

    commissions = split_commissions(order=order)

    assert [c.beneficiary_id for c in commissions] == [seller.pk, grandparent.pk]


@pytest.mark.django_db
def test_the_merchant_commission_depth_cuts_the_chain():
    seller, parent, _grandparent = make_chain(3)
    DistributionSettings.objects.filter(pk=1).update(commission_depth=2)

    commissions = split_commissions(order=make_order(seller))

    assert [c.beneficiary_id for c in commissions] == [seller.pk, parent.pk]


@pytest.mark.django_db
def test_splits_round_down_to_the_fen_and_the_remainder_stays_with_the_merchant():
    seller, *_rest = make_chain(3, rates=(333, 333, 333))
    order = make_order(seller, paid="33.33", cost="0.00")

    commissions = split_commissions(order=order)

    assert [c.amount for c in commissions] == [
        Decimal("1.10")
    ] * 3  # 33.33 × 3.33 % = 1.109889


@pytest.mark.django_db
def test_a_product_rule_overrides_the_grade_and_a_fixed_rule_pays_per_unit(owner_user):
    seller, _parent, _g = make_chain(3, rates=(1000, 500, 0))
    product = ProductFactory(retail_price=Decimal("50.00"), cost_price=Decimal("10.00"))
    save_commission_rule(
        rule=CommissionRule(product=product, level=1, rate_bp=1500), actor=owner_user
    )
    save_commission_rule(
        rule=CommissionRule(
            product=product, level=2, mode=RuleMode.FIXED, fixed_amount=Decimal("1.50")
        ),
        actor=owner_user,
    )

    commissions = split_commissions(
        order=make_order(
            seller, paid="100.00", cost="20.00", product=product, quantity=2
        )
    )

    assert [(c.level, c.amount) for c in commissions] == [
        (1, Decimal("15.00")),
        (2, Decimal("3.00")),
    ]
    assert "15.00%" in commissions[0].rule_description


@pytest.mark.django_db
def test_a_product_bonus_is_a_second_row_for_the_seller_and_a_campaign_multiplies(
    owner_user,
):
    seller, *_rest = make_chain(1, rates=(500, 0, 0))
    product = ProductFactory()
    ProductBonus.objects.create(product=product, bonus_bp=300)
    save_campaign(
        campaign=Campaign(
            name="双十一",
            multiplier_bp=20000,
            starts_at=timezone.now() - timedelta(days=1),
            ends_at=timezone.now() + timedelta(days=1),
        ),
        actor=owner_user,
    )

    commissions = split_commissions(
        order=make_order(seller, paid="100.00", product=product)
    )

    assert sorted((c.kind, c.amount) for c in commissions) == [
        ("bonus", Decimal("3.00")),
        ("level", Decimal("10.00")),
    ]


@pytest.mark.django_db
def test_the_margin_base_pays_on_paid_less_cost():
    seller, *_rest = make_chain(1, rates=(1000, 0, 0))
    policy = get_policy()
    policy.base = CommissionBase.MARGIN
    policy.save()

    commissions = split_commissions(
        order=make_order(seller, paid="100.00", cost="60.00")
    )

    assert commissions[0].amount == Decimal("4.00")
    assert commissions[0].base_amount == Decimal("40.00")


@pytest.mark.django_db
def test_a_self_purchase_pays_the_buyer_nothing_unless_the_merchant_allows_it():
    seller, parent = make_chain(2)
    order = make_order(
        seller,
        attribution={
            "distributor_id": seller.pk,
            "chain": [parent.pk],
            "self_purchase": True,
        },
    )

    commissions = split_commissions(order=order)

    assert [c.beneficiary_id for c in commissions] == [parent.pk]


@pytest.mark.django_db
def test_at_run_time_the_payout_is_capped_and_the_event_recorded():
    seller, *_rest = make_chain(3, rates=(2000, 1500, 1000))  # 45 % — over the 30 % cap
    order = make_order(seller, paid="100.00", cost="0.00")

    commissions = split_commissions(order=order)

    total = sum(c.amount for c in commissions)
    assert total <= Decimal("30.00")
    event = CapEvent.objects.get(order=order)
    assert (event.computed_amount, event.capped_amount) == (Decimal("45.00"), total)
    assert "上限" in event.reason


@pytest.mark.django_db
def test_the_margin_cap_counts_the_sub_store_price_difference():
    seller, *_rest = make_chain(1, rates=(1000, 0, 0))
    policy = get_policy()
    policy.max_margin_share_bp = 5000
    policy.save()
    product = ProductFactory(
        retail_price=Decimal("100.00"), cost_price=Decimal("60.00")
    )
    # the seller's cost is 80 (grade discount 80 %), sub-store price 95: 15 difference
    order = make_order(
        seller,
        paid="95.00",
        cost="60.00",
        product=product,
        attribution={"distributor_id": seller.pk, "chain": [], "sub_store": 1},
    )

    commissions = split_commissions(order=order)

    # margin 35 × 50 % = 17.50: the seller's 15.00 difference first, then 2.50 of commission
    # at most (9.50 computed)
    by_kind = {c.kind: c.amount for c in commissions}
    assert by_kind == {CommissionKind.LEVEL: Decimal("2.50"), CommissionKind.PRICE_DIFFERENCE: Decimal("15.00")}
    difference = next(c for c in commissions if c.kind == CommissionKind.PRICE_DIFFERENCE)
    assert (difference.beneficiary_id, difference.level) == (seller.pk, 1)
    assert "95.00" in difference.rule_description and "80.00" in difference.rule_description


@pytest.mark.django_db
def test_a_sub_store_sale_pays_the_seller_the_difference_snapshotted_at_checkout():
    seller, parent = make_chain(2, rates=(1000, 500, 0))
    policy = get_policy()
    policy.max_margin_share_bp = 10000
    policy.save()
    product = ProductFactory(retail_price=Decimal("100.00"), cost_price=Decimal("40.00"))
    # checkout snapshotted a cost of 70; today's grade cost (80) does not matter any more; the
    # margin (50) covers the difference (20) and the commissions (13.50) uncapped
    order = make_order(
        seller,
        paid="90.00",
        cost="40.00",
        product=product,
        attribution={"distributor_id": seller.pk, "chain": [parent.pk], "sub_store": 1, "seller_unit_cost": "70.00"},
    )

    commissions = split_commissions(order=order)

    amounts = {(c.beneficiary_id, c.kind): c.amount for c in commissions}
    assert amounts[(seller.pk, CommissionKind.PRICE_DIFFERENCE)] == Decimal("20.00")
    assert amounts[(seller.pk, CommissionKind.LEVEL)] == Decimal("9.00")
    assert amounts[(parent.pk, CommissionKind.LEVEL)] == Decimal("4.50")
    pending = distributor_account(seller.pk, AccountKind.DISTRIBUTOR_PENDING)
    assert pending.balance == Decimal("29.00")  # both lines wait for settlement
    assert split_commissions(order=order) == commissions  # a second call writes nothing new


@pytest.mark.django_db
def test_a_distributor_buying_from_their_own_store_earns_no_difference():
    seller, *_rest = make_chain(1, rates=(1000, 0, 0))
    product = ProductFactory(retail_price=Decimal("100.00"), cost_price=Decimal("60.00"))
    order = make_order(
        seller,
        paid="90.00",
        cost="60.00",
        product=product,
        attribution={
            "distributor_id": seller.pk, "chain": [], "sub_store": 1, "seller_unit_cost": "70.00",
            "buyer_distributor_id": seller.pk,
        },
    )

    assert [c.kind for c in split_commissions(order=order)] == []


@pytest.mark.django_db
def test_an_unattributed_order_pays_nothing():
    assert split_commissions(order=make_order(None)) == []


# --- the compliance guard --------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"level": 4, "rate_bp": 100}, "最多向上分配 3 级"),
        ({"level": 1, "rate_bp": -5}, "0–100%"),
        ({"level": 1, "rate_bp": 10001}, "0–100%"),
        ({"level": 1, "trigger": RuleTrigger.RECRUITMENT, "rate_bp": 100}, "拉人头"),
        (
            {"level": 1, "mode": RuleMode.FIXED, "fixed_amount": Decimal("5.00")},
            "必须指定商品",
        ),
        ({"level": 1, "rate_bp": 3500}, "超过单笔订单上限 30.00%"),
    ],
)
def test_a_rule_that_breaks_compliance_is_refused_with_the_reason(
    owner_user, rule, message
):
    GradeFactory()

    with pytest.raises(ValidationError, match=message):
        save_commission_rule(rule=CommissionRule(**rule), actor=owner_user)

    assert not CommissionRule.objects.exists()


@pytest.mark.django_db
def test_rules_whose_levels_together_could_exceed_the_cap_are_refused(owner_user):
    grade = GradeFactory()
    save_commission_rule(
        rule=CommissionRule(grade=grade, level=1, rate_bp=2000), actor=owner_user
    )

    with pytest.raises(ValidationError, match="超过单笔订单上限"):
        save_commission_rule(
            rule=CommissionRule(level=2, rate_bp=1500), actor=owner_user
        )

    assert CommissionRule.objects.count() == 1


@pytest.mark.django_db
def test_a_rule_that_could_breach_the_margin_share_is_refused(owner_user):
    policy = get_policy()
    policy.max_margin_share_bp = 5000
    policy.save()
    product = ProductFactory(
        retail_price=Decimal("100.00"), cost_price=Decimal("90.00")
    )

    with pytest.raises(ValidationError, match="毛利分配上限"):
        save_commission_rule(
            rule=CommissionRule(product=product, level=1, rate_bp=1000),
            actor=owner_user,
        )


@pytest.mark.django_db
def test_a_campaign_that_would_lift_rules_over_the_cap_is_refused(owner_user):
    make_chain(1, rates=(2000, 0, 0))

    with pytest.raises(ValidationError, match="超过单笔订单上限"):
        save_campaign(
            campaign=Campaign(
                name="三倍",
                multiplier_bp=30000,
                starts_at=timezone.now(),
                ends_at=timezone.now() + timedelta(days=1),
            ),
            actor=owner_user,
        )
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_a_rule_that_with_the_sub_store_difference_could_breach_the_margin_is_refused(
    owner_user,
):
    # sold at the 120 ceiling by a distributor whose cost is 80: 40 difference; margin 60
    GradeFactory(wholesale_discount_bp=8000, may_open_sub_store=True)
    ProductFactory(
        retail_price=Decimal("100.00"),
        cost_price=Decimal("60.00"),
        max_resale_price=Decimal("120.00"),
    )

    save_commission_rule(
        rule=CommissionRule(level=1, rate_bp=1500), actor=owner_user
    )  # 18 + 40 ≤ 60
    with pytest.raises(ValidationError, match="佣金加分站差价"):
        save_commission_rule(
            rule=CommissionRule(level=2, rate_bp=500), actor=owner_user
        )  # 24 + 40 > 60

    assert CommissionRule.objects.count() == 1
