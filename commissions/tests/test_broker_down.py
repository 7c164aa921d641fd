"""With the broker down, a staff action that enqueues follow-up work still succeeds: the work is
in the database and the periodic re-drive picks it up."""

import pytest
from kombu.exceptions import OperationalError

from commissions.models import WithdrawalStatus
from commissions.services import approve_withdrawal, request_withdrawal
from commissions.tasks import pay_withdrawal_task

from .test_withdrawals import agent, alipay, finance_user  # noqa: F401 — fixtures


@pytest.mark.django_db
def test_approving_a_withdrawal_while_the_broker_is_down_keeps_the_approval(
    agent,  # noqa: F811
    alipay,  # noqa: F811
    finance_user,  # noqa: F811
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    withdrawal = request_withdrawal(distributor=agent, payout_account=alipay, amount="300.00", token="t")

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(pay_withdrawal_task, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        approved = approve_withdrawal(withdrawal=withdrawal, actor=finance_user)

    approved.refresh_from_db()
    assert approved.status == WithdrawalStatus.APPROVED
