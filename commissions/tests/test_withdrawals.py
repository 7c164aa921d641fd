import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import override_settings

from commissions import selectors
from commissions.models import AccountKind, PayoutAccount, Withdrawal, WithdrawalStatus
from commissions.services import (
    InsufficientBalance,
    add_payout_account,
    approve_withdrawal,
    freeze_commissions,
    labour_remuneration_tax,
    pay_from_wallet,
    pay_withdrawal,
    reject_withdrawal,
    request_withdrawal,
    reveal_payout_account,
)
from commissions.services.ledger import (
    credit,
    debit,
    distributor_account,
    merchant_account,
    post_journal_transaction,
)

from .factories import UserFactory, make_chain

VALID_CARD = "6222020200112233445"  # passes Luhn? computed below in a test helper


def _luhn_card(prefix="622202020011223344"):
    from commissions.services.withdrawals import luhn_ok

    for digit in "0123456789":
        if luhn_ok(prefix + digit):
            return prefix + digit
    raise AssertionError


def _fund(distributor, amount):
    """Put settled money on the distributor's available balance, through the ledger."""
    post_journal_transaction(
        kind="settlement",
        reference=f"fund:{distributor.pk}:{amount}:{Withdrawal.objects.count()}",
        lines=[
            debit(merchant_account(AccountKind.MERCHANT_REVENUE), Decimal(amount)),
            credit(
                distributor_account(distributor.pk, AccountKind.DISTRIBUTOR_AVAILABLE),
                Decimal(amount),
            ),
        ],
    )


@pytest.fixture
def agent(db):
    seller, *_rest = make_chain(1)
    _fund(seller, "1000.00")
    return seller


@pytest.fixture
def alipay(agent):
    return add_payout_account(
        distributor=agent, method="alipay", holder_name="张三", account="13800138000"
    )


@pytest.fixture
def finance_user(db):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="finance"))
    return user


@pytest.mark.parametrize(
    ("income", "tax"),
    [
        ("800.00", "0.00"),
        ("3000.00", "440.00"),
        ("4000.00", "640.00"),
        ("10000.00", "1600.00"),
        ("25000.00", "4000.00"),
        ("30000.00", "5200.00"),
        ("60000.00", "12400.00"),
        ("100000.00", "25000.00"),
    ],
)
def test_labour_remuneration_tax_follows_the_rule(income, tax):
    assert labour_remuneration_tax(Decimal(income)) == Decimal(tax)


@pytest.mark.django_db
def test_payout_accounts_are_encrypted_and_masked(agent):
    card = _luhn_card()
    account = add_payout_account(
        distributor=agent,
        method="bank_card",
        holder_name="张三",
        account=card,
        bank_name="工商银行",
    )

    stored = PayoutAccount.objects.get(pk=account.pk)
    assert card.encode() not in bytes(stored.account_ciphertext)
    assert stored.account_mask == f"**** **** **** {card[-4:]}"
    assert reveal_payout_account(stored) == card


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "account", "message"),
    [
        ("bank_card", "6222020200112233440", "校验失败"),  # fails Luhn
        ("bank_card", "1234", "12–19 位数字"),
        ("alipay", "not-an-account", "手机号或邮箱"),
        ("wechat", "a b", "微信号"),
    ],
)
def test_malformed_payout_accounts_are_refused(agent, method, account, message):
    if (
        method == "bank_card"
        and account.startswith("6222")
        and _luhn_card("622202020011223344") == account
    ):
        pytest.skip("the sample happens to pass Luhn")
    with pytest.raises(ValidationError, match=message):
        add_payout_account(
            distributor=agent,
            method=method,
            holder_name="张三",
            account=account,
            bank_name="工行",
        )
    assert not PayoutAccount.objects.exists()


@pytest.mark.django_db
def test_a_withdrawal_withholds_the_months_tax_and_the_fee_and_moves_the_money_in_transit(
    agent, alipay
):
    from commissions.services import get_policy

    policy = get_policy()
    policy.withdrawal_fee_fixed = Decimal("1.00")
    policy.withdrawal_fee_bp = 100
    policy.save()

    withdrawal = request_withdrawal(
        distributor=agent, payout_account=alipay, amount="900.00", token="tok-1"
    )

    assert (withdrawal.fee, withdrawal.tax, withdrawal.net_amount) == (
        Decimal("10.00"),
        Decimal("20.00"),
        Decimal("870.00"),
    )
    assert selectors.wallet(agent)["available"] == Decimal("100.00")
    assert merchant_account(AccountKind.PAYOUTS_IN_TRANSIT).balance == Decimal("870.00")
    assert merchant_account(AccountKind.TAX_WITHHELD).balance == Decimal("20.00")


@pytest.mark.django_db
def test_the_months_second_withdrawal_withholds_only_the_extra_tax(agent, alipay):
    agent.grade.withdrawal_daily_max_amount = Decimal("100000.00")
    agent.grade.save()
    _fund(agent, "5000.00")

    first = request_withdrawal(
        distributor=agent, payout_account=alipay, amount="3000.00", token="a"
    )
    second = request_withdrawal(
        distributor=agent, payout_account=alipay, amount="2000.00", token="b"
    )

    assert first.tax == Decimal("440.00")
    assert first.tax + second.tax == labour_remuneration_tax(Decimal("5000.00"))
    statement = selectors.monthly_tax_statements(agent)[0]
    assert (statement["income"], statement["tax"]) == (
        Decimal("5000.00"),
        Decimal("800.00"),
    )


@pytest.mark.django_db
def test_the_same_token_submitted_twice_withdraws_once(agent, alipay):
    first = request_withdrawal(
        distributor=agent, payout_account=alipay, amount="100.00", token="same"
    )
    second = request_withdrawal(
        distributor=agent, payout_account=alipay, amount="100.00", token="same"
    )

    assert first.pk == second.pk
    assert selectors.wallet(agent)["available"] == Decimal("900.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("5.00", "单笔最低提现"),
        ("1000.01", "余额不足"),
        ("-3", "正确的金额"),
        ("1.234", "正确的金额"),
    ],
)
def test_bad_withdrawals_are_refused_with_a_clear_message_and_change_nothing(
    agent, alipay, amount, message
):
    agent.grade.withdrawal_daily_max_amount = Decimal("100000.00")
    agent.grade.save()
    with pytest.raises(ValidationError, match=message):
        request_withdrawal(
            distributor=agent, payout_account=alipay, amount=amount, token="t"
        )
    assert not Withdrawal.objects.exists()
    assert selectors.wallet(agent)["available"] == Decimal("1000.00")


@pytest.mark.django_db
def test_the_daily_limit_counts_the_days_earlier_withdrawals(agent, alipay):
    agent.grade.withdrawal_daily_max_amount = Decimal("500.00")
    agent.grade.save()
    request_withdrawal(
        distributor=agent, payout_account=alipay, amount="400.00", token="x"
    )

    with pytest.raises(ValidationError, match="每日提现上限"):
        request_withdrawal(
            distributor=agent, payout_account=alipay, amount="200.00", token="y"
        )


@pytest.mark.django_db
def test_a_fee_not_below_the_amount_is_refused(agent, alipay):
    from commissions.services import get_policy

    policy = get_policy()
    policy.withdrawal_fee_fixed = Decimal("20.00")
    policy.save()

    with pytest.raises(ValidationError, match="不低于提现金额"):
        request_withdrawal(
            distributor=agent, payout_account=alipay, amount="20.00", token="t"
        )


@pytest.mark.django_db
def test_a_negative_balance_or_a_risk_hold_blocks_withdrawal(agent, alipay, owner_user):
    freeze_commissions(distributor=agent, reason="风控", actor=owner_user)

    with pytest.raises(ValidationError, match="风控冻结"):
        request_withdrawal(
            distributor=agent, payout_account=alipay, amount="100.00", token="t"
        )


@pytest.mark.django_db
def test_finance_rejects_with_a_reason_and_the_funds_return(
    agent, alipay, finance_user
):
    withdrawal = request_withdrawal(
        distributor=agent, payout_account=alipay, amount="300.00", token="t"
    )

    with pytest.raises(ValidationError, match="驳回原因"):
        reject_withdrawal(withdrawal=withdrawal, actor=finance_user, reason="")
    reject_withdrawal(withdrawal=withdrawal, actor=finance_user, reason="账户名不符")

    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.reject_reason) == (
        WithdrawalStatus.REJECTED,
        "账户名不符",
    )
    assert selectors.wallet(agent)["available"] == Decimal("1000.00")
    assert merchant_account(AccountKind.PAYOUTS_IN_TRANSIT).balance == Decimal("0.00")


@pytest.mark.django_db
def test_only_finance_may_review(agent, alipay):
    withdrawal = request_withdrawal(
        distributor=agent, payout_account=alipay, amount="300.00", token="t"
    )
    with pytest.raises(PermissionDenied):
        approve_withdrawal(withdrawal=withdrawal, actor=agent.user)


@pytest.mark.django_db
def test_an_approved_withdrawal_is_paid_through_the_sandbox_adapter(
    agent, alipay, finance_user, django_capture_on_commit_callbacks
):
    withdrawal = request_withdrawal(
        distributor=agent, payout_account=alipay, amount="300.00", token="t"
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        approve_withdrawal(withdrawal=withdrawal, actor=finance_user)
    assert len(callbacks) == 1
    paid = pay_withdrawal(withdrawal_id=withdrawal.pk)

    assert paid.status == WithdrawalStatus.PAID
    assert paid.gateway_payout_no.startswith("SBX")
    assert merchant_account(AccountKind.PAYOUTS_IN_TRANSIT).balance == Decimal("0.00")
    assert merchant_account(AccountKind.PAYOUTS_PAID).balance == paid.net_amount
    assert pay_withdrawal(withdrawal_id=withdrawal.pk).status == WithdrawalStatus.PAID


@pytest.mark.django_db
@override_settings(COMMISSIONS_SANDBOX_PAYOUT_OUTCOME="failure")
def test_a_failed_payout_returns_the_funds(agent, alipay, finance_user):
    withdrawal = request_withdrawal(
        distributor=agent, payout_account=alipay, amount="300.00", token="t"
    )
    approve_withdrawal(withdrawal=withdrawal, actor=finance_user)

    failed = pay_withdrawal(withdrawal_id=withdrawal.pk)

    assert failed.status == WithdrawalStatus.FAILED
    assert "configured to fail" in failed.failure_reason
    assert selectors.wallet(agent)["available"] == Decimal("1000.00")


@pytest.mark.django_db
def test_a_wallet_payment_is_taken_once_per_reference_and_never_overdraws(agent):
    pay_from_wallet(distributor=agent, amount="600.00", reference="K1")
    pay_from_wallet(distributor=agent, amount="600.00", reference="K1")

    with pytest.raises(InsufficientBalance):
        pay_from_wallet(distributor=agent, amount="600.00", reference="K2")
    assert selectors.wallet(agent)["available"] == Decimal("400.00")


@pytest.mark.django_db(transaction=True)
def test_a_withdrawal_and_a_wallet_payment_at_the_same_moment_never_overdraw():
    seller, *_rest = make_chain(1)
    seller.grade.withdrawal_daily_max_amount = Decimal("100000.00")
    seller.grade.save()
    _fund(seller, "1000.00")
    account = add_payout_account(
        distributor=seller, method="alipay", holder_name="张三", account="13800138000"
    )
    barrier = threading.Barrier(3)
    outcomes = []

    def run(action):
        try:
            barrier.wait()
            action()
            outcomes.append("ok")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    actions = [
        lambda: request_withdrawal(
            distributor=seller, payout_account=account, amount="700.00", token="w1"
        ),
        lambda: request_withdrawal(
            distributor=seller, payout_account=account, amount="700.00", token="w2"
        ),
        lambda: pay_from_wallet(
            distributor=seller, amount="700.00", reference="K-race"
        ),
    ]
    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["ok", "refused", "refused"]
    assert selectors.wallet(seller)["available"] == Decimal("300.00")


@pytest.mark.real_name_check
@pytest.mark.django_db
def test_a_distributor_without_a_verified_real_name_cannot_withdraw_and_nothing_moves():
    from commissions.selectors import wallet
    from commissions.services import add_payout_account, request_withdrawal

    seller, *_upline = make_chain(1)
    account = add_payout_account(distributor=seller, method="alipay", account="13800138000", holder_name="张三")
    before = wallet(seller)

    with pytest.raises(ValidationError, match="实名认证"):
        request_withdrawal(distributor=seller, payout_account=account, amount="10.00", token="tok-kyc")

    assert wallet(seller) == before
