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
