"""Grade cost, sub-store price bounds, commission depth and the two checkout hooks."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from distribution import services
from distribution.models import (
    DistributionSettings,
    Distributor,
    DistributorStatus,
    GradeProductPrice,
    GradeVolumeTier,
    ReferralLink,
    SubStore,
    SubStorePrice,
)

from .factories import DistributorFactory, GradeFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def product():
    return ProductFactory(
        retail_price=Decimal("100.00"),
        cost_price=Decimal("60.00"),
        max_resale_price=Decimal("120.00"),
    )


@pytest.fixture
def agent():
    return DistributorFactory(
        grade=GradeFactory(wholesale_discount_bp=8000, may_open_sub_store=True)
    )


def test_cost_is_the_grade_discount_then_the_per_product_override_then_volume_tiers(
    agent, product
):
    assert services.cost_price_for(
        distributor=agent, product=product, quantity=1
    ) == Decimal("80.00")

    GradeProductPrice.objects.create(
        grade=agent.grade, product=product, unit_cost=Decimal("75.00")
    )
    assert services.cost_price_for(
        distributor=agent, product=product, quantity=1
    ) == Decimal("75.00")

    GradeVolumeTier.objects.create(
        grade=agent.grade, product=None, min_quantity=10, rate_bp=9800
    )
    GradeVolumeTier.objects.create(
        grade=agent.grade, product=product, min_quantity=50, rate_bp=9000
    )
    assert services.cost_price_for(
        distributor=agent, product=product, quantity=9
    ) == Decimal("75.00")
    assert services.cost_price_for(
        distributor=agent, product=product, quantity=10
    ) == Decimal("73.50")
    assert services.cost_price_for(
        distributor=agent, product=product, quantity=50
    ) == Decimal("67.50")


def test_cost_never_falls_below_the_merchant_cost(agent, product):
    GradeVolumeTier.objects.create(grade=agent.grade, min_quantity=2, rate_bp=5000)

    assert services.cost_price_for(
        distributor=agent, product=product, quantity=5
    ) == Decimal("60.00")


@pytest.fixture
def store(agent):
    return services.save_sub_store(
        distributor=agent, name="小王的卡铺", slug="xiaowang", notice="欢迎光临"
    )


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("79.99", "不能低于您的拿货价 ¥80.00"),
        ("120.01", "不能高于商户限价 ¥120.00"),
        ("abc", "不是有效金额"),
        ("99.999", "不是有效金额"),
        ("0", "不是有效金额"),
    ],
)
def test_sub_store_prices_outside_the_bounds_are_refused(
    agent, product, store, price, expected
):
    # A grade that may see its cost is told it (test_portal_cost_visibility: one that may not is not).
    type(agent.grade).objects.filter(pk=agent.grade_id).update(may_see_floor_price=True)
    with pytest.raises(ValidationError) as raised:
        services.set_sub_store_price(distributor=agent, product=product, price=price)

    assert expected in " ".join(raised.value.message_dict["price"])
    assert SubStorePrice.objects.count() == 0


def test_the_database_refuses_a_price_outside_its_bounds_too(store, product):
    with pytest.raises(IntegrityError), transaction.atomic():
        SubStorePrice.objects.create(
            sub_store=store,
            product=product,
            price=Decimal(130),
            floor_price=Decimal(80),
            ceiling_price=Decimal(120),
        )


def test_a_sub_store_price_is_what_an_attributed_buyer_pays(agent, product, store):
    services.set_sub_store_price(distributor=agent, product=product, price="110.00")

    assert services.price_for_order(
        product=product, distributor_id=agent.pk, quantity=1
    ) == Decimal("110.00")
    assert (
        services.price_for_order(product=product, distributor_id=None, quantity=1)
        is None
    )
    assert (
        services.price_for_order(
            product=ProductFactory(), distributor_id=agent.pk, quantity=1
        )
        is None
    )


def test_a_stale_sub_store_price_is_pulled_back_inside_todays_bounds(
    agent, product, store
):
    services.set_sub_store_price(distributor=agent, product=product, price="118.00")
    product.max_resale_price = Decimal("110.00")
    product.save()

    assert services.price_for_order(
        product=product, distributor_id=agent.pk, quantity=1
    ) == Decimal("110.00")


def test_a_frozen_distributor_or_closed_store_sells_at_retail(agent, product, store):
    services.set_sub_store_price(distributor=agent, product=product, price="110.00")
    Distributor.objects.filter(pk=agent.pk).update(status=DistributorStatus.FROZEN)

    assert (
        services.price_for_order(product=product, distributor_id=agent.pk, quantity=1)
        is None
    )


def test_a_grade_without_sub_stores_cannot_open_one(product):
    plain = DistributorFactory(grade=GradeFactory(may_open_sub_store=False))

    with pytest.raises(PermissionDenied):
        services.save_sub_store(distributor=plain, name="店", slug="plain-shop")


def test_sub_store_slugs_are_unique_and_not_reserved(store):
    other = DistributorFactory(grade=GradeFactory(may_open_sub_store=True))

    for slug, expected in (
        ("xiaowang", "已被使用"),
        ("admin", "系统保留"),
        ("x", "至少 3 个字符"),
    ):
        with pytest.raises(ValidationError) as raised:
            services.save_sub_store(distributor=other, name="店", slug=slug)
        assert expected in " ".join(raised.value.message_dict["slug"])


def test_attribution_snapshots_the_upline_nearest_first_cut_at_the_depth(owner_user):
    grade = GradeFactory()
    nodes = [DistributorFactory(grade=grade)]
    for _ in range(5):
        nodes.append(
            DistributorFactory(
                grade=grade, parent=Distributor.objects.get(pk=nodes[-1].pk)
            )
        )
    seller = Distributor.objects.get(pk=nodes[-1].pk)
    link = services.create_referral_link(distributor=seller, channel="douyin")

    found = services.attribution_for_referral(code=link.code.lower())

    assert found == {
        "distributor_id": seller.pk,
        "chain": [nodes[4].pk, nodes[3].pk],
        "link": link.code,
        "sub_store": None,
        "grade": seller.grade_id,
        "chain_grades": [grade.pk] * 2,
        "depth": 3,
        "seller": seller,
    }
    services.set_commission_depth(depth=2, actor=owner_user)
    assert services.attribution_for_referral(code=link.code)["chain"] == [nodes[4].pk]
    link.refresh_from_db()
    assert link.orders == 0  # looking up counts nothing: the order's transaction does
    services.count_referral_order(code=link.code)
    link.refresh_from_db()
    assert link.orders == 1


def test_unknown_codes_and_inactive_distributors_attribute_nothing(agent):
    link = services.create_referral_link(distributor=agent, channel="wechat")
    Distributor.objects.filter(pk=agent.pk).update(status=DistributorStatus.FROZEN)

    assert services.attribution_for_referral(code="RNOPE") is None
    assert services.attribution_for_referral(code=link.code) is None


@pytest.mark.parametrize("depth", [0, 4, "x", -1])
def test_commission_depth_is_never_more_than_three(owner_user, depth):
    with pytest.raises(ValidationError) as raised:
        services.set_commission_depth(depth=depth, actor=owner_user)

    assert "commission_depth" in raised.value.message_dict
    assert DistributionSettings.objects.get(pk=1).commission_depth == 3


def test_the_database_refuses_a_depth_above_three():
    with pytest.raises(IntegrityError), transaction.atomic():
        DistributionSettings.objects.filter(pk=1).update(commission_depth=4)


def test_clicks_are_counted_once_per_call_and_links_are_one_per_channel(agent):
    link = services.create_referral_link(distributor=agent, channel="xiaohongshu")
    assert (
        services.create_referral_link(distributor=agent, channel="xiaohongshu") == link
    )

    assert services.record_referral_click(code=link.code) is True
    assert services.record_referral_click(code=link.code) is True
    assert services.record_referral_click(code="UNKNOWN") is False
    assert ReferralLink.objects.get(pk=link.pk).clicks == 2


def test_a_sub_store_gets_its_own_share_link(agent, store):
    link = ReferralLink.objects.get(sub_store=store)

    assert services.attribution_for_referral(code=link.code)["sub_store"] == store.pk


@pytest.mark.parametrize("path", ["statement", "portable"])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("seller_level", [1, 2, 3, 4, 6])
def test_the_snapshot_holds_exactly_the_people_the_depth_can_pay(
    owner_user, path, depth, seller_level
):
    """Level 1 is the seller, so depth d snapshots the seller and at most d − 1 ancestors,
    nearest first, whatever the tree's depth: the split, the risk rules and the cockpit all
    read the same (at most 3) people."""
    from distribution.services.attribution import _attribution_portable

    grade = GradeFactory()
    nodes = [DistributorFactory(grade=grade)]
    for _ in range(seller_level - 1):
        nodes.append(DistributorFactory(grade=grade, parent=Distributor.objects.get(pk=nodes[-1].pk)))
    seller = Distributor.objects.get(pk=nodes[-1].pk)
    link = services.create_referral_link(distributor=seller, channel="wechat")
    services.set_commission_depth(depth=depth, actor=owner_user)

    if path == "statement":
        found = services.attribution_for_referral(code=link.code)
    else:
        found = _attribution_portable(link.code)

    above = [node.pk for node in reversed(nodes[:-1])]
    assert found["distributor_id"] == seller.pk
    assert found["chain"] == above[: depth - 1]
    assert found["chain_grades"] == [grade.pk] * len(found["chain"])
    assert 1 + len(found["chain"]) == min(depth, seller_level)


@pytest.mark.parametrize("path", ["statement", "portable"])
@pytest.mark.parametrize("is_open", [True, False])
def test_every_link_of_a_store_owner_attributes_to_the_open_store(agent, store, path, is_open):
    """ADR 0012: the store link and an ordinary link snapshot the same sub-store (the one the
    order is a sale of) while it is open, and none when it is closed."""
    from distribution.services.attribution import _attribution_portable

    SubStore.objects.filter(pk=store.pk).update(is_open=is_open)
    links = [
        ReferralLink.objects.get(sub_store=store),
        services.create_referral_link(distributor=agent, channel="douyin"),
    ]
    look_up = services.attribution_for_referral if path == "statement" else None

    found = [look_up(code=link.code) if look_up else _attribution_portable(link.code) for link in links]

    assert [row["sub_store"] for row in found] == [store.pk if is_open else None] * 2
