from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from commissions.models import CommissionTier, TierMode
from commissions.services import get_policy, split_commissions
from commissions.services.rules import save_commission_tiers

from .factories import make_chain, make_order

BANDS = [("0", "100", 800), ("100", "500", 1000), ("500", None, 1500)]


def _seller_with_history(owner_user, mode):
    seller, *_rest = make_chain(1, rates=(500, 0, 0))
    policy = get_policy()
    policy.tier_mode = mode
    policy.save()
    save_commission_tiers(grade=seller.grade, bands=BANDS, actor=owner_user)
    make_order(seller, paid="80.00", cost="0.00")  # earlier sales this month
    return seller


@pytest.mark.django_db
def test_marginal_tiers_pay_each_band_at_its_own_rate(owner_user):
    seller = _seller_with_history(owner_user, TierMode.MARGINAL)

    line = split_commissions(order=make_order(seller, paid="40.00", cost="0.00"))[0]

    # 20 at 8 % + 20 at 10 % = 3.60
    assert line.amount == Decimal("3.60")
    assert (
        "阶梯佣金 9.00%" in line.rule_description and "¥80.00" in line.rule_description
    )


@pytest.mark.django_db
def test_whole_volume_tiers_lift_the_rate_once_a_boundary_is_crossed(owner_user):
    seller = _seller_with_history(owner_user, TierMode.WHOLE)

    line = split_commissions(order=make_order(seller, paid="40.00", cost="0.00"))[0]

    assert line.amount == Decimal("4.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ([("0", "150", 800), ("100", None, 1000)], "重叠"),
        ([("0", "100", 800), ("200", None, 1000)], "缺口"),
        ([("10", None, 800)], "从 ¥0 开始"),
        ([("0", "100", 800)], "不封顶"),
        ([("0", None, -5)], "0–100%"),
        ([("0", None, "abc")], "必须是数字"),
        ([("0", None, 4000)], "超过单笔订单上限"),
    ],
)
def test_bad_tiers_are_refused_with_the_reason_and_change_nothing(
    owner_user, bands, message
):
    seller, *_rest = make_chain(1)
    save_commission_tiers(grade=seller.grade, bands=BANDS, actor=owner_user)

    with pytest.raises(ValidationError, match=message):
        save_commission_tiers(grade=seller.grade, bands=bands, actor=owner_user)

    assert CommissionTier.objects.count() == 3


@pytest.mark.django_db
def test_finance_sets_tiers_in_the_console_and_overlaps_show_the_reason(
    client, owner_user
):
    from django.urls import reverse

    seller, *_rest = make_chain(1)
    client.force_login(owner_user)
    url = reverse("admin:commissions_commissiontier_edit")

    bad = client.post(url, {"grade": seller.grade.pk, "bands": "0,150,800\n100,,1000"})
    good = client.post(url, {"grade": seller.grade.pk, "bands": "0,100,800\n100,,1000"})

    assert "重叠" in bad.content.decode()
    assert good.status_code == 302
    assert CommissionTier.objects.count() == 2
