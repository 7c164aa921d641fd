from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone

from commissions import tasks
from commissions.models import Commission, SettlementRun, Withdrawal, WithdrawalStatus
from commissions.services import add_payout_account, get_policy, request_withdrawal, split_commissions

from .factories import make_chain, make_order
from .test_withdrawals import _fund


def test_beat_runs_every_settlement_cycle_and_the_payout_redrive():
    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "commissions.tasks.settle_commissions_task" in entries
    assert "commissions.tasks.redrive_approved_withdrawals_task" in entries
    cycles = sorted(
        entry["args"][0]
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] == "commissions.tasks.settle_commissions_task"
    )
    assert cycles == ["daily", "monthly", "weekly"]


@pytest.mark.django_db
def test_only_the_merchants_cycle_settles_and_running_it_twice_settles_once():
    policy = get_policy()
    policy.settlement_cycle = "weekly"
    policy.save()
    seller, *_rest = make_chain(1)
    split_commissions(order=make_order(seller))
    Commission.objects.update(available_at=timezone.now() - timedelta(minutes=1))

    assert tasks.settle_commissions_task("daily") is None
    first = tasks.settle_commissions_task("weekly")
    second = tasks.settle_commissions_task("weekly")

    assert first is not None and first == second
    assert SettlementRun.objects.count() == 1


@pytest.mark.django_db
def test_a_scheduled_settlement_with_nothing_due_records_no_run():
    assert tasks.settle_commissions_task(get_policy().settlement_cycle) is None
    assert not SettlementRun.objects.exists()


@pytest.mark.django_db
def test_lost_payout_tasks_are_sent_again():
    seller, *_rest = make_chain(1)
    _fund(seller, "500.00")
    account = add_payout_account(
        distributor=seller, method="alipay", holder_name="张三", account="13800138000"
    )
    withdrawal = request_withdrawal(
        distributor=seller, payout_account=account, amount="100.00", token="t"
    )
    Withdrawal.objects.filter(pk=withdrawal.pk).update(
        status=WithdrawalStatus.APPROVED,
        reviewed_at=timezone.now() - timedelta(hours=1),
    )

    with mock.patch.object(tasks.pay_withdrawal_task, "delay") as delay:
        assert tasks.redrive_approved_withdrawals_task() == 1
    delay.assert_called_once_with(withdrawal.pk)
    tasks.pay_withdrawal_task(withdrawal.pk)
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == WithdrawalStatus.PAID


@pytest.mark.django_db
def test_payouts_whose_result_is_unknown_are_asked_about_until_they_settle(settings):
    """The sandbox says "pending" (the provider accepted, not finished): the withdrawal stays
    paying; the beat's check asks again and records the answer once it is final."""
    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "commissions.tasks.check_paying_withdrawals_task" in entries
    seller, *_rest = make_chain(1)
    _fund(seller, "500.00")
    account = add_payout_account(distributor=seller, method="alipay", holder_name="张三", account="13800138000")
    withdrawal = request_withdrawal(distributor=seller, payout_account=account, amount="100.00", token="t")
    Withdrawal.objects.filter(pk=withdrawal.pk).update(
        status=WithdrawalStatus.APPROVED, reviewed_at=timezone.now() - timedelta(hours=1)
    )
    settings.COMMISSIONS_SANDBOX_PAYOUT_OUTCOME = "pending"

    assert tasks.pay_withdrawal_task(withdrawal.pk) == WithdrawalStatus.PAYING
    assert tasks.check_paying_withdrawals_task() == 1
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == WithdrawalStatus.PAYING
    settings.COMMISSIONS_SANDBOX_PAYOUT_OUTCOME = "success"
    assert tasks.check_paying_withdrawals_task() == 1

    assert Withdrawal.objects.get(pk=withdrawal.pk).status == WithdrawalStatus.PAID
    assert tasks.check_paying_withdrawals_task() == 0
