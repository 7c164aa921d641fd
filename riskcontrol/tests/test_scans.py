"""Scheduled scans: linked distributor accounts and fake recruiting produce events."""

from datetime import timedelta

import pytest
from django.utils import timezone

from distribution.tests.factories import DistributorFactory
from riskcontrol.models import (
    Action,
    BlacklistEntry,
    RiskEvent,
    RiskRule,
    RuleCode,
    SignalKind,
)
from riskcontrol.scans import scan_fake_recruiting, scan_linked_accounts
from riskcontrol.services import record_distributor_signal
from riskcontrol.tasks import run_risk_scans_task

pytestmark = pytest.mark.django_db


def test_two_distributors_on_one_device_are_linked_once_a_day():
    first, second, third = (
        DistributorFactory(),
        DistributorFactory(),
        DistributorFactory(),
    )
    record_distributor_signal(
        kind=SignalKind.LOGIN, distributor_id=first.pk, device_id="ab" * 16
    )
    record_distributor_signal(
        kind=SignalKind.SIGNUP, distributor_id=second.pk, device_id="ab" * 16
    )
    record_distributor_signal(
        kind=SignalKind.LOGIN, distributor_id=third.pk, device_id="cd" * 16
    )

    events = scan_linked_accounts()
    again = scan_linked_accounts()

    assert sorted(event.distributor_id for event in events) == [first.pk, second.pk]
    assert again == []
    assert f"#{second.pk}" in RiskEvent.objects.get(distributor_id=first.pk).explanation


def test_a_shared_payout_account_with_the_blacklist_action_blacklists_both():
    RiskRule.objects.filter(code=RuleCode.LINKED_ACCOUNTS).update(
        action=Action.BLACKLIST
    )
    first, second = DistributorFactory(), DistributorFactory()
    for distributor in (first, second):
        record_distributor_signal(
            kind=SignalKind.PAYOUT_ACCOUNT,
            distributor_id=distributor.pk,
            payment_account="6222 0000 1111 2222",
        )

    scan_linked_accounts()

    assert set(BlacklistEntry.objects.values_list("value_index", flat=True)) == {
        str(first.pk),
        str(second.pk),
    }


def test_fast_team_growth_without_sales_is_fake_recruiting():
    RiskRule.objects.filter(code=RuleCode.FAKE_RECRUITING).update(threshold=3)
    leader = DistributorFactory()
    for _n in range(3):
        DistributorFactory(parent=leader, joined_at=timezone.now() - timedelta(days=1))
    quiet = DistributorFactory()
    DistributorFactory(parent=quiet)

    events = scan_fake_recruiting()

    assert [event.distributor_id for event in events] == [leader.pk]
    assert (
        events[0].rule == RuleCode.FAKE_RECRUITING and events[0].action == Action.REVIEW
    )


def test_the_scan_task_runs_both_scans():
    assert run_risk_scans_task() == {"linked_accounts": 0, "fake_recruiting": 0}
