"""The month's tax always equals the rule applied to the month's paid or still payable income,
whatever happens to the month's withdrawals (issue 14): a rejection or a failed payout
recomputes the month and returns (or, rarely, withholds) the difference through the ledger."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from commissions import selectors
from commissions.models import AccountKind, TransactionKind, Withdrawal, WithdrawalStatus
from commissions.payouts import PayoutError, PayoutResult
from commissions.services import (
    add_payout_account,
    approve_withdrawal,
    labour_remuneration_tax,
    pay_withdrawal,
    reject_withdrawal,
    request_withdrawal,
)
from commissions.services.ledger import credit, debit, distributor_account, merchant_account, post_journal_transaction

from .factories import UserFactory, make_chain

FUNDS = Decimal("1000000.00")
ZERO = Decimal("0.00")


class _Succeeds:
    def pay(self, *, payout_no, **_kwargs):
        return PayoutResult(provider_payout_no=f"T{payout_no}")


class _Fails:
    def pay(self, **_kwargs):
        raise PayoutError("bank refused the transfer")


def _funded_agent():
    agent, *_rest = make_chain(1)
    agent.grade.withdrawal_min_amount = Decimal("1.00")
    agent.grade.withdrawal_daily_max_amount = FUNDS
    agent.grade.save()
    post_journal_transaction(
        kind=TransactionKind.SETTLEMENT,
        reference=f"fund:{agent.pk}",
        lines=[
            debit(merchant_account(AccountKind.MERCHANT_REVENUE), FUNDS),
            credit(distributor_account(agent.pk, AccountKind.DISTRIBUTOR_AVAILABLE), FUNDS),
        ],
    )
    account = add_payout_account(distributor=agent, method="alipay", holder_name="张三", account="13800138000")
    return agent, account


def _finance_user():
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="finance"))
    return user


def _month(agent):
    """(income paid or payable, tax withheld net of adjustments) of the agent's month."""
    counted = ~Q(status__in=[WithdrawalStatus.REJECTED, WithdrawalStatus.FAILED])
    row = Withdrawal.objects.filter(distributor=agent).aggregate(
        income=Sum("amount", filter=counted, default=ZERO),
        tax=Sum("tax", filter=counted, default=ZERO),
        adjustments=Sum("tax_adjustment", default=ZERO),
    )
    return row["income"], row["tax"] + row["adjustments"]


def _assert_the_books_hold(agent, tax_account_before):
    income, withheld = _month(agent)
    assert withheld == labour_remuneration_tax(income)
    assert merchant_account(AccountKind.TAX_WITHHELD).balance - tax_account_before == withheld
    adjustments = Withdrawal.objects.filter(distributor=agent).aggregate(total=Sum("tax_adjustment", default=ZERO))
    # a request takes its whole amount; a rejection or failure gives it back; an adjustment
    # returns (negative) or withholds (positive) the month's difference
    assert selectors.wallet(agent)["available"] == FUNDS - income - adjustments["total"]
    report = selectors.ledger_differences()
    assert report["accounts"] == [] and report["transactions"] == []
    statement = selectors.monthly_tax_statements(agent)
    if income or withheld:
        assert (statement[0]["income"], statement[0]["tax"]) == (income, withheld)


@pytest.mark.django_db
def test_rejecting_the_first_of_two_withdrawals_returns_the_tax_the_second_no_longer_owes():
    """The issue's case: 3,000 (tax 440), then 1,000 while the first is pending (tax 200, the
    month being 4,000); the first is rejected, the month is 1,000 and owes 40: 160 returned."""
    agent, account = _funded_agent()
    first = request_withdrawal(distributor=agent, payout_account=account, amount="3000.00", token="a")
    second = request_withdrawal(distributor=agent, payout_account=account, amount="1000.00", token="b")
    assert (first.tax, second.tax) == (Decimal("440.00"), Decimal("200.00"))

    rejected = reject_withdrawal(withdrawal=first, actor=_finance_user(), reason="账户信息不符")

    assert rejected.tax_adjustment == Decimal("-160.00")
    assert _month(agent) == (Decimal("1000.00"), Decimal("40.00"))
    assert merchant_account(AccountKind.TAX_WITHHELD).balance == Decimal("40.00")
    assert selectors.wallet(agent)["available"] == FUNDS - Decimal("1000.00") + Decimal("160.00")
    statement = selectors.monthly_tax_statements(agent)[0]
    assert (statement["income"], statement["tax"], statement["tax_adjustment"]) == (
        Decimal("1000.00"),
        Decimal("40.00"),
        Decimal("-160.00"),
    )


@pytest.mark.django_db
def test_a_rejection_that_leaves_the_month_owing_more_withholds_the_difference():
    agent, account = _funded_agent()
    reviewer = _finance_user()
    first = request_withdrawal(distributor=agent, payout_account=account, amount="3000.00", token="a")
    second = request_withdrawal(distributor=agent, payout_account=account, amount="1000.00", token="b")
    reject_withdrawal(withdrawal=first, actor=reviewer, reason="驳回")
    third = request_withdrawal(distributor=agent, payout_account=account, amount="9000.00", token="c")
    assert third.tax == Decimal("1560.00")

    rejected = reject_withdrawal(withdrawal=second, actor=reviewer, reason="驳回")

    assert rejected.tax_adjustment == Decimal("40.00")
    assert _month(agent) == (Decimal("9000.00"), labour_remuneration_tax(Decimal("9000.00")))
    assert merchant_account(AccountKind.TAX_WITHHELD).balance == Decimal("1440.00")


@pytest.mark.django_db
def test_a_failed_payout_recomputes_the_month_too_and_a_repeat_changes_nothing():
    agent, account = _funded_agent()
    reviewer = _finance_user()
    first = request_withdrawal(distributor=agent, payout_account=account, amount="3000.00", token="a")
    request_withdrawal(distributor=agent, payout_account=account, amount="1000.00", token="b")
    approve_withdrawal(withdrawal=first, actor=reviewer)

    failed = pay_withdrawal(withdrawal_id=first.pk, adapter=_Fails())
    again = pay_withdrawal(withdrawal_id=first.pk, adapter=_Fails())

    assert failed.status == again.status == WithdrawalStatus.FAILED
    assert Withdrawal.objects.get(pk=first.pk).tax_adjustment == Decimal("-160.00")
    assert _month(agent) == (Decimal("1000.00"), Decimal("40.00"))
    assert merchant_account(AccountKind.TAX_WITHHELD).balance == Decimal("40.00")


operations = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.integers(min_value=100, max_value=4_000_000)),  # fen
        st.tuples(st.sampled_from(["reject", "pay", "fail"]), st.integers(min_value=0, max_value=20)),
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.django_db
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=operations)
@example(steps=[("request", 100), ("request", 79903), ("reject", 0)])  # 800.03 owes 0.01; 799.03 nothing
def test_the_months_tax_is_the_rule_applied_to_its_payable_income_at_every_step(steps):
    with transaction.atomic():
        agent, account = _funded_agent()
        reviewer = _finance_user()
        tax_before = merchant_account(AccountKind.TAX_WITHHELD).balance
        made = []
        for index, (action, value) in enumerate(steps):
            if action == "request":
                try:
                    made.append(
                        request_withdrawal(
                            distributor=agent,
                            payout_account=account,
                            amount=str(Decimal(value) / 100),
                            token=f"t{index}",
                        )
                    )
                except ValidationError:
                    pass
            elif made:
                withdrawal = Withdrawal.objects.get(pk=made[value % len(made)].pk)
                if action == "reject" and withdrawal.status == WithdrawalStatus.REQUESTED:
                    reject_withdrawal(withdrawal=withdrawal, actor=reviewer, reason="驳回")
                elif action in ("pay", "fail") and withdrawal.status == WithdrawalStatus.REQUESTED:
                    approve_withdrawal(withdrawal=withdrawal, actor=reviewer)
                    adapter = _Succeeds() if action == "pay" else _Fails()
                    pay_withdrawal(withdrawal_id=withdrawal.pk, adapter=adapter)
            _assert_the_books_hold(agent, tax_before)
        transaction.set_rollback(True)


@pytest.mark.django_db(transaction=True)
def test_rejections_failures_and_requests_at_the_same_moment_keep_the_months_tax_right():
    """Real threads on PostgreSQL: two rejections, a failed payout and two new requests of one
    distributor at once. Each locks the distributor's available account before reading the
    month, so none computes the tax on a month another is changing, and none deadlocks."""
    import threading

    from django.db import connection

    agent, account = _funded_agent()
    reviewer = _finance_user()
    pending = [
        request_withdrawal(distributor=agent, payout_account=account, amount=amount, token=f"p{index}")
        for index, amount in enumerate(["3000.00", "1000.00", "9000.00"])
    ]
    approve_withdrawal(withdrawal=pending[2], actor=reviewer)
    barrier = threading.Barrier(5)
    errors = []

    def run(action):
        try:
            barrier.wait()
            action()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    actions = [
        lambda: reject_withdrawal(withdrawal=pending[0], actor=reviewer, reason="驳回"),
        lambda: reject_withdrawal(withdrawal=pending[1], actor=reviewer, reason="驳回"),
        lambda: pay_withdrawal(withdrawal_id=pending[2].pk, adapter=_Fails()),
        lambda: request_withdrawal(distributor=agent, payout_account=account, amount="2000.00", token="n1"),
        lambda: request_withdrawal(distributor=agent, payout_account=account, amount="500.00", token="n2"),
    ]
    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert _month(agent) == (Decimal("2500.00"), labour_remuneration_tax(Decimal("2500.00")))
    assert merchant_account(AccountKind.TAX_WITHHELD).balance == labour_remuneration_tax(Decimal("2500.00"))
    report = selectors.ledger_differences()
    assert report["accounts"] == [] and report["transactions"] == []


@pytest.mark.django_db
def test_a_rejection_in_the_next_month_recomputes_the_month_the_withdrawal_belongs_to():
    from datetime import timedelta

    from django.utils import timezone

    agent, account = _funded_agent()
    first = request_withdrawal(distributor=agent, payout_account=account, amount="3000.00", token="a")
    second = request_withdrawal(distributor=agent, payout_account=account, amount="1000.00", token="b")
    last_month = timezone.localtime().replace(day=1) - timedelta(days=3)
    Withdrawal.objects.filter(pk__in=[first.pk, second.pk]).update(created_at=last_month)
    this_month = request_withdrawal(distributor=agent, payout_account=account, amount="1000.00", token="c")
    assert this_month.tax == Decimal("40.00")  # a new month starts from nothing

    rejected = reject_withdrawal(withdrawal=first, actor=_finance_user(), reason="驳回")

    assert rejected.tax_adjustment == Decimal("-160.00")
    statements = selectors.monthly_tax_statements(agent)
    assert [(row["income"], row["tax"], row["tax_adjustment"]) for row in statements] == [
        (Decimal("1000.00"), Decimal("40.00"), ZERO),
        (Decimal("1000.00"), Decimal("40.00"), Decimal("-160.00")),
    ]
    assert merchant_account(AccountKind.TAX_WITHHELD).balance == Decimal("80.00")
