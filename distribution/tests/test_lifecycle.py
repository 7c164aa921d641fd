"""Clean-out (warn, then freeze; a sale lifts the warning) and segment tags."""

from datetime import timedelta

import pytest
from django.utils import timezone

from distribution.models import Distributor, DistributorStatus
from distribution.services import lifecycle

from .factories import DistributorFactory
from .test_portal import make_order

pytestmark = pytest.mark.django_db


def test_an_inactive_distributor_is_warned_then_frozen_after_the_grace(owner_user):
    now = timezone.now()
    idle = DistributorFactory(joined_at=now - timedelta(days=200))
    seller = DistributorFactory(joined_at=now - timedelta(days=200))
    newcomer = DistributorFactory(joined_at=now - timedelta(days=10))
    make_order(seller, paid_at=now - timedelta(days=3))

    assert lifecycle.run_clean_out(now=now) == {"warned": 1, "frozen": 0, "lifted": 0}
    assert lifecycle.run_clean_out(now=now) == {"warned": 0, "frozen": 0, "lifted": 0}
    assert lifecycle.run_clean_out(now=now + timedelta(days=8))["frozen"] == 1

    assert Distributor.objects.get(pk=idle.pk).status == DistributorStatus.FROZEN
    assert Distributor.objects.get(pk=seller.pk).status == DistributorStatus.ACTIVE
    assert Distributor.objects.get(pk=newcomer.pk).status == DistributorStatus.ACTIVE
    assert (
        Distributor.objects.get(pk=idle.pk)
        .status_changes.last()
        .cause.startswith("连续 90 天无销售")
    )


def test_a_sale_after_the_warning_lifts_it():
    now = timezone.now()
    idle = DistributorFactory(joined_at=now - timedelta(days=200))
    lifecycle.run_clean_out(now=now)
    make_order(idle, paid_at=now + timedelta(days=1))

    result = lifecycle.run_clean_out(now=now + timedelta(days=8))

    assert result["lifted"] == 1
    assert result["frozen"] == 0
    assert Distributor.objects.get(pk=idle.pk).inactivity_warned_at is None


def test_segment_tags_are_computed_and_merchant_tags_kept():
    now = timezone.now()
    promoter = DistributorFactory(joined_at=now - timedelta(days=300), tags=["VIP"])
    dormant = DistributorFactory(
        joined_at=now - timedelta(days=300), tags=["活跃推广型"]
    )
    rising = DistributorFactory(joined_at=now - timedelta(days=20))
    for _ in range(5):
        make_order(promoter, paid_at=now - timedelta(days=2))
    make_order(rising, paid_at=now - timedelta(days=1))

    lifecycle.compute_segment_tags(now=now)

    assert Distributor.objects.get(pk=promoter.pk).tags == ["VIP", "活跃推广型"]
    assert Distributor.objects.get(pk=dormant.pk).tags == ["躺平型"]
    assert Distributor.objects.get(pk=rising.pk).tags == ["潜力成长型"]
    assert lifecycle.compute_segment_tags(now=now) == 0


def test_a_distributor_meeting_the_rule_is_promoted_and_told():
    from distribution.models import DistributorNotice, PromotionRule
    from distribution.services.lifecycle import run_promotions

    from .factories import GradeFactory

    low, high = GradeFactory(name="推广员X", rank=1), GradeFactory(name="市代X", rank=2)
    PromotionRule.objects.create(
        from_grade=low,
        to_grade=high,
        period_days=30,
        min_own_sales="100.00",
        min_direct_recruits=1,
    )
    now = timezone.now()
    star = DistributorFactory(grade=low)
    DistributorFactory(
        grade=low,
        parent=Distributor.objects.get(pk=star.pk),
        joined_at=now - timedelta(days=2),
    )
    make_order(star, amount="60.00", paid_at=now - timedelta(days=1))
    make_order(star, amount="60.00", paid_at=now - timedelta(days=5))
    almost = DistributorFactory(grade=low)
    make_order(almost, amount="500.00", paid_at=now - timedelta(days=1))

    assert run_promotions(now=now) == 1
    assert run_promotions(now=now) == 0

    assert Distributor.objects.get(pk=star.pk).grade == high
    assert Distributor.objects.get(pk=almost.pk).grade == low
    assert "市代X" in DistributorNotice.objects.get(distributor=star).message


def test_the_warning_is_shown_in_the_portal(client):
    now = timezone.now()
    idle = DistributorFactory(joined_at=now - timedelta(days=200))
    lifecycle.run_clean_out(now=now)
    client.force_login(idle.user)

    page = client.get("/agent/").content.decode()

    assert "天没有销售" in page


def test_a_frozen_distributor_appeals_and_the_merchant_unfreezes(client, staff_user):
    from distribution.models import Appeal, AppealStatus
    from distribution.services.lifecycle import decide_appeal

    frozen = DistributorFactory(status=DistributorStatus.FROZEN)
    client.force_login(frozen.user)
    assert "提交申诉" in client.get("/agent/").content.decode()

    client.post("/agent/appeal/", {"reason": "上月在外地，已恢复推广"})
    client.post("/agent/appeal/", {"reason": "再次申诉"})
    appeal = Appeal.objects.get(distributor=frozen)
    assert appeal.reason == "上月在外地，已恢复推广"

    decided = decide_appeal(
        appeal=appeal, accept=True, actor=staff_user, note="情况属实"
    )
    assert decided.status == AppealStatus.ACCEPTED
    assert Distributor.objects.get(pk=frozen.pk).status == DistributorStatus.ACTIVE
    assert (
        decide_appeal(appeal=appeal, accept=False, actor=staff_user).status
        == AppealStatus.ACCEPTED
    )
    assert client.get("/agent/").status_code == 200


def test_an_active_distributor_cannot_appeal_and_a_rejection_keeps_the_freeze(
    staff_user,
):
    from django.core.exceptions import ValidationError

    from distribution.models import AppealStatus
    from distribution.services.lifecycle import decide_appeal, submit_appeal

    with pytest.raises(ValidationError):
        submit_appeal(distributor=DistributorFactory(), reason="x")
    frozen = DistributorFactory(status=DistributorStatus.FROZEN)
    appeal = submit_appeal(distributor=frozen, reason="请求解冻")

    assert (
        decide_appeal(
            appeal=appeal, accept=False, actor=staff_user, note="仍无销售"
        ).status
        == AppealStatus.REJECTED
    )
    assert Distributor.objects.get(pk=frozen.pk).status == DistributorStatus.FROZEN
