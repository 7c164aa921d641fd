"""Scheduled scans: linked distributor accounts and fake recruiting produce events."""

from datetime import timedelta

import pytest
from django.utils import timezone

from distribution.tests.factories import DistributorFactory
from orders.models import Order
from riskcontrol.models import (
    Action,
    BlacklistEntry,
    RiskEvent,
    RiskRule,
    RiskSignal,
    RuleCode,
    SignalKind,
)
from orders.services.risk_scans import (
    scan_commission_concentration,
    scan_commission_out_of_line,
    scan_fake_recruiting,
    scan_linked_accounts,
)
from riskcontrol.services.signals import record_distributor_signal
from orders.tasks import run_risk_scans_task

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


def test_the_scan_task_runs_every_scan():
    assert run_risk_scans_task() == {
        "linked_accounts": 0,
        "fake_recruiting": 0,
        "commission_out_of_line": 0,
        "commission_concentrated": 0,
    }


# --- commission out of line with sales -------------------------------------------------------
def _sell(seller, count, *, contacts=None, paid="100.00"):
    """``count`` orders attributed to ``seller`` with their commission split (10 % level 1)."""
    from commissions.services import split_commissions
    from commissions.tests.factories import make_order

    orders = []
    for n in range(count):
        order = make_order(seller, paid=paid)
        if contacts is not None:
            Order.objects.filter(pk=order.pk).update(contact=contacts[n % len(contacts)])
        split_commissions(order=order)
        orders.append(order)
    return orders


def test_commission_on_sales_that_were_refunded_is_out_of_line_and_freezes_the_wallet():
    from commissions.models import WalletHold
    from commissions.tests.factories import make_chain, refund

    RiskRule.objects.filter(code=RuleCode.COMMISSION_OUT_OF_LINE).update(
        action=Action.FREEZE_COMMISSIONS
    )
    seller, *_rest = make_chain(1, rates=(1000, 0, 0))
    orders = _sell(seller, 6, contacts=[f"b{n}@example.com" for n in range(6)])
    assert scan_commission_out_of_line() == []  # ¥60 on ¥600: 10 %, in line

    for order in orders[:5]:
        refund(order, "100.00")  # refunded, commission not reversed: ¥60 on ¥100 real sales
    events = scan_commission_out_of_line()

    assert [event.distributor_id for event in events] == [seller.pk]
    event = events[0]
    assert event.rule == RuleCode.COMMISSION_OUT_OF_LINE
    assert event.action == Action.FREEZE_COMMISSIONS and event.matched_on == "commission_ratio"
    assert "¥60.00" in event.explanation and "¥100.00" in event.explanation
    assert "60%" in event.explanation and "30%" in event.explanation
    assert WalletHold.objects.filter(distributor=seller, is_active=True).exists()
    event.refresh_from_db()
    assert event.outcome == "已冻结分销商佣金"
    assert scan_commission_out_of_line() == []  # once a day


def test_an_upline_is_judged_on_its_whole_team_sales():
    from commissions.tests.factories import make_chain

    seller, leader, *_rest = make_chain(2, rates=(1000, 500, 0))
    _sell(seller, 12, contacts=[f"b{n}@example.com" for n in range(12)])

    # The leader earns 5 % of the seller's sales: in line, though the leader sold nothing.
    assert scan_commission_out_of_line() == []


def test_commissioned_orders_from_one_buyer_are_flagged():
    from commissions.tests.factories import make_chain

    seller, *_rest = make_chain(1, rates=(1000, 0, 0))
    _sell(seller, 6, contacts=["13800138000"] * 5 + ["13900139000"])

    events = scan_commission_concentration()

    assert [event.distributor_id for event in events] == [seller.pk]
    assert events[0].rule == RuleCode.COMMISSION_CONCENTRATED
    assert events[0].action == Action.REVIEW and events[0].matched_on == "contact"
    assert "6 笔带佣订单中 5 笔" in events[0].explanation
    assert "138****8000" in events[0].explanation


def test_commissioned_orders_from_one_device_blacklist_the_distributor_when_so_configured():
    from commissions.tests.factories import make_chain

    RiskRule.objects.filter(code=RuleCode.COMMISSION_CONCENTRATED).update(
        action=Action.BLACKLIST
    )
    seller, *_rest = make_chain(1, rates=(1000, 0, 0))
    orders = _sell(seller, 5, contacts=[f"b{n}@example.com" for n in range(5)])
    RiskSignal.objects.bulk_create(
        [
            RiskSignal(kind=SignalKind.CHECKOUT, order_no=order.order_no, device_id="ab" * 16)
            for order in orders
        ]
    )

    events = scan_commission_concentration()

    assert [event.matched_on for event in events] == ["device"]
    assert BlacklistEntry.objects.filter(
        kind="distributor", value_index=str(seller.pk)
    ).exists()


def test_commissions_from_many_buyers_and_devices_are_not_concentrated():
    from commissions.tests.factories import make_chain

    seller, *_rest = make_chain(1, rates=(1000, 0, 0))
    _sell(seller, 10, contacts=[f"b{n % 3}@example.com" for n in range(10)])  # 4/10 at most

    assert scan_commission_concentration() == []
