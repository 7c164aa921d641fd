"""Deposits (保证金) in the ledger and their refund on leaving the network (docs/adr/0023):
held on the gateway's payment, given back once, after finance approves; a clawback debt is
covered first when the merchant's rule says so; the rest is paid out, untaxed."""

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from commissions import selectors
from commissions.models import (
    AccountKind,
    DepositRefund,
    DepositRefundStatus,
    JournalTransaction,
    Withdrawal,
    WithdrawalStatus,
)
from commissions.services import (
    add_payout_account,
    approve_deposit_refund,
    deposit_balance,
    hold_deposit,
    pay_withdrawal,
    reject_deposit_refund,
    request_deposit_refund,
)
from commissions.services.ledger import (
    credit,
    debit,
    distributor_account,
    merchant_account,
    post_journal_transaction,
)
from commissions.services.rules import get_policy
from commissions.services.withdrawals import labour_remuneration_tax, tax_due
from distribution.models import DepositStatus, Distributor, DistributorStatus
from kamen.models import AuditLogEntry

from .factories import DistributorFactory, make_chain
from .test_withdrawals import _fund


def _available(distributor) -> Decimal:
    return distributor_account(distributor.pk, AccountKind.DISTRIBUTOR_AVAILABLE).balance


def _with_deposit(distributor, amount="500.00"):
    Distributor.objects.filter(pk=distributor.pk).update(
        deposit_amount=Decimal(amount), deposit_status=DepositStatus.PENDING
    )
    hold_deposit(distributor_id=distributor.pk, amount=amount, reference=f"D-{distributor.pk}")
    return Distributor.objects.get(pk=distributor.pk)


def _debt(distributor, amount):
    """A clawback after settlement: the available balance goes negative."""
    post_journal_transaction(
        kind="clawback",
        reference=f"test-clawback:{distributor.pk}:{amount}",
        lines=[
            debit(distributor_account(distributor.pk, AccountKind.DISTRIBUTOR_AVAILABLE), Decimal(amount)),
            credit(merchant_account(AccountKind.MERCHANT_REVENUE), Decimal(amount)),
        ],
    )


@pytest.fixture
def finance_user(django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="finance", is_staff=True)
    user.groups.add(Group.objects.get(name="finance"))
    return user


@pytest.fixture
def member(db):
    seller, _parent = make_chain(2)
    return _with_deposit(seller)


@pytest.fixture
def alipay(member):
    return add_payout_account(distributor=member, method="alipay", holder_name="张三", account="13800138000")


@pytest.mark.django_db
def test_a_paid_deposit_is_held_in_the_ledger_once_and_marks_the_deposit_held(member):
    again = hold_deposit(distributor_id=member.pk, amount="500.00", reference=f"D-{member.pk}")

    assert deposit_balance(member.pk) == Decimal("500.00")
    assert merchant_account(AccountKind.GATEWAY_CLEARING).balance == Decimal("-500.00")
    assert JournalTransaction.objects.filter(reference=f"deposit:D-{member.pk}").count() == 1
    assert again.reference == f"deposit:D-{member.pk}"
    assert member.deposit_status == DepositStatus.HELD


@pytest.mark.django_db
def test_a_refund_without_debt_clears_the_member_and_pays_the_whole_deposit_out_untaxed(
    member, alipay, finance_user, django_capture_on_commit_callbacks
):
    child = DistributorFactory(parent=member, grade=member.grade)
    refund = request_deposit_refund(distributor=member, payout_account=alipay, token="t1", reason="不做了")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        approved = approve_deposit_refund(refund=refund, actor=finance_user)
    paid = pay_withdrawal(withdrawal_id=approved.withdrawal_id)

    member.refresh_from_db()
    child.refresh_from_db()
    assert (approved.status, approved.offset_amount, approved.refund_amount) == (
        DepositRefundStatus.APPROVED,
        Decimal("0.00"),
        Decimal("500.00"),
    )
    assert member.status == DistributorStatus.CLEARED and member.deposit_status == DepositStatus.REFUNDED
    assert child.parent_id == member.parent_id  # the team lifted to the member's parent
    assert len(callbacks) == 1 and paid.status == WithdrawalStatus.PAID
    assert (paid.amount, paid.tax, paid.fee, paid.net_amount) == (Decimal("500.00"), 0, 0, Decimal("500.00"))
    assert deposit_balance(member.pk) == Decimal("0.00") and _available(member) == Decimal("0.00")
    assert merchant_account(AccountKind.PAYOUTS_PAID).balance == Decimal("500.00")
    # Its own money back: not income, so a later withdrawal's tax ignores it.
    assert tax_due(distributor_id=member.pk, amount=Decimal("3000.00")) == labour_remuneration_tax(3000)
    actions = set(AuditLogEntry.objects.values_list("action", flat=True))
    assert {
        "commissions.deposit_refund_requested",
        "commissions.deposit_refund_approved",
        "distribution.distributor.cleared",
        "distribution.distributor.deposit_returned",
    } <= actions


@pytest.mark.django_db
def test_the_deposit_covers_a_clawback_debt_first_when_the_rule_says_so(member, alipay, finance_user):
    _debt(member, "120.00")

    approved = approve_deposit_refund(
        refund=request_deposit_refund(distributor=member, payout_account=alipay, token="t1"), actor=finance_user
    )

    assert (approved.offset_amount, approved.refund_amount) == (Decimal("120.00"), Decimal("380.00"))
    assert approved.withdrawal.amount == Decimal("380.00")
    assert _available(member) == Decimal("0.00")  # the debt is paid, nothing more
    assert deposit_balance(member.pk) == Decimal("0.00")
    assert JournalTransaction.objects.get(reference=f"deposit-offset:{approved.pk}").kind == "deposit_offset"
    assert JournalTransaction.objects.get(reference=f"deposit-refund:{approved.pk}").kind == "deposit_refund"


@pytest.mark.django_db
def test_a_debt_larger_than_the_deposit_takes_it_all_and_nothing_is_paid_out(member, alipay, finance_user):
    _debt(member, "800.00")

    approved = approve_deposit_refund(
        refund=request_deposit_refund(distributor=member, payout_account=alipay, token="t1"), actor=finance_user
    )

    assert (approved.offset_amount, approved.refund_amount, approved.withdrawal) == (
        Decimal("500.00"),
        Decimal("0.00"),
        None,
    )
    assert _available(member) == Decimal("-300.00")
    assert not Withdrawal.objects.exists()


@pytest.mark.django_db
def test_without_the_rule_the_whole_deposit_is_paid_back_and_the_debt_stays(member, alipay, finance_user):
    policy = get_policy()
    policy.deposit_covers_debt = False
    policy.save()
    _debt(member, "120.00")

    approved = approve_deposit_refund(
        refund=request_deposit_refund(distributor=member, payout_account=alipay, token="t1"), actor=finance_user
    )

    assert (approved.offset_amount, approved.refund_amount) == (Decimal("0.00"), Decimal("500.00"))
    assert approved.withdrawal.amount == Decimal("500.00")
    assert _available(member) == Decimal("-120.00")
    assert not JournalTransaction.objects.filter(reference=f"deposit-offset:{approved.pk}").exists()


def _state(member):
    return (
        deposit_balance(member.pk),
        _available(member),
        list(DepositRefund.objects.order_by("pk").values_list("status", "refund_amount")),
        Withdrawal.objects.count(),
        JournalTransaction.objects.count(),
        Distributor.objects.get(pk=member.pk).status,
    )


@pytest.mark.django_db
def test_bad_refund_requests_and_decisions_are_refused_and_change_nothing(member, alipay, finance_user):
    (stranger,) = make_chain(1)
    theirs = add_payout_account(distributor=stranger, method="alipay", holder_name="李四", account="13900139000")
    refund = request_deposit_refund(distributor=member, payout_account=alipay, token="t1")
    before = _state(member)
    attempts = [
        (lambda: request_deposit_refund(distributor=stranger, payout_account=theirs, token="s"), "没有可退还的保证金"),
        (lambda: request_deposit_refund(distributor=member, payout_account=theirs, token="t2"), "自己的收款账户"),
        (lambda: request_deposit_refund(distributor=member, payout_account=alipay, token="t3"), "已有待审核"),
        (lambda: request_deposit_refund(distributor=member, payout_account=alipay, token=""), "表单已过期"),
        (lambda: reject_deposit_refund(refund=refund, actor=finance_user, reason=" "), "驳回原因"),
    ]
    for attempt, message in attempts:
        with pytest.raises(ValidationError) as raised:
            attempt()
        assert message in " ".join(raised.value.messages)
    with pytest.raises(PermissionDenied):
        approve_deposit_refund(refund=refund, actor=member.user)

    assert _state(member) == before
    assert request_deposit_refund(distributor=member, payout_account=alipay, token="t1").pk == refund.pk


@pytest.mark.django_db
def test_a_deposit_is_refunded_once_and_a_decided_request_stays_decided(member, alipay, finance_user):
    refund = request_deposit_refund(distributor=member, payout_account=alipay, token="t1")
    approve_deposit_refund(refund=refund, actor=finance_user)
    after_first = _state(member)

    again = approve_deposit_refund(refund=refund, actor=finance_user)
    with pytest.raises(ValidationError) as twice:
        request_deposit_refund(distributor=member, payout_account=alipay, token="t2")
    with pytest.raises(ValidationError) as reject_done:
        reject_deposit_refund(refund=refund, actor=finance_user, reason="晚了")

    assert again.status == DepositRefundStatus.APPROVED
    assert "没有可退还的保证金" in " ".join(twice.value.messages)
    assert "不能再驳回" in " ".join(reject_done.value.messages)
    assert _state(member) == after_first


@pytest.mark.django_db
def test_a_rejected_request_leaves_the_deposit_held_and_the_member_in_the_network(member, alipay, finance_user):
    refund = request_deposit_refund(distributor=member, payout_account=alipay, token="t1")

    rejected = reject_deposit_refund(refund=refund, actor=finance_user, reason="有未结订单")
    with pytest.raises(ValidationError):
        approve_deposit_refund(refund=refund, actor=finance_user)

    assert rejected.status == DepositRefundStatus.REJECTED
    assert deposit_balance(member.pk) == Decimal("500.00")
    assert Distributor.objects.get(pk=member.pk).status == DistributorStatus.ACTIVE
    assert request_deposit_refund(distributor=member, payout_account=alipay, token="t2").status == "requested"


@pytest.mark.django_db(transaction=True)
def test_concurrent_refund_requests_and_approvals_pay_once(django_user_model):
    from django.contrib.auth.models import Group

    seller, _parent = make_chain(2)
    member = _with_deposit(seller)
    _fund(member, "10.00")
    alipay = add_payout_account(distributor=member, method="alipay", holder_name="张三", account="13800138000")
    reviewers = []
    for index in range(2):
        user = django_user_model.objects.create_user(username=f"finance-{index}", is_staff=True)
        user.groups.add(Group.objects.get(name="finance"))
        reviewers.append(user)

    def run_all(target, arguments):
        barrier = threading.Barrier(len(arguments))
        errors = []

        def run(argument):
            try:
                barrier.wait()
                target(argument)
            except ValidationError as error:
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=(argument,)) for argument in arguments]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return errors

    request_errors = run_all(
        lambda token: request_deposit_refund(distributor=member, payout_account=alipay, token=token),
        [f"token-{index}" for index in range(6)],
    )
    (refund,) = DepositRefund.objects.all()
    approve_errors = run_all(
        lambda index: approve_deposit_refund(refund=refund, actor=reviewers[index % 2]), list(range(6))
    )

    assert len(request_errors) == 5
    assert approve_errors == []
    assert Withdrawal.objects.count() == 1 and Withdrawal.objects.get().amount == Decimal("500.00")
    assert JournalTransaction.objects.filter(kind="deposit_refund").count() == 1
    assert deposit_balance(member.pk) == Decimal("0.00")
    assert selectors.wallet(member)["available"] == Decimal("10.00")


@pytest.mark.django_db
def test_finance_approves_a_refund_in_the_console_and_the_member_page_shows_it(client, member, alipay, finance_user):
    refund = request_deposit_refund(distributor=member, payout_account=alipay, token="t1")
    client.force_login(finance_user)

    listing = client.get("/admin/commissions/depositrefund/").content.decode()
    response = client.post(
        "/admin/commissions/depositrefund/",
        {"action": "approve", "_selected_action": [str(refund.pk)]},
        follow=True,
    )
    refund.refresh_from_db()

    assert "¥500.00" in listing or "500.00" in listing
    assert "已通过 1 笔保证金退还" in response.content.decode()
    assert refund.status == DepositRefundStatus.APPROVED and refund.reviewed_by == finance_user
    assert Distributor.objects.get(pk=member.pk).status == DistributorStatus.CLEARED


@pytest.mark.django_db
def test_the_console_shows_what_an_applicant_still_lacks_instead_of_ticks(client, django_user_model):
    from distribution.tests.factories import GradeFactory

    grade = GradeFactory(admission_mode="staff", deposit_amount=Decimal("300.00"), first_order_amount=Decimal("50"))
    applicant = DistributorFactory(
        grade=grade, status=DistributorStatus.APPLIED, deposit_amount=Decimal("300.00"), deposit_status="pending"
    )
    client.force_login(django_user_model.objects.create_superuser(username="boss", password="x" * 12))

    page = client.get(f"/admin/distribution/distributor/{applicant.pk}/manage/").content.decode()
    refused = client.post(
        f"/admin/distribution/distributor/{applicant.pk}/manage/", {"action": "approve"}, follow=True
    ).content.decode()

    assert "可退保证金 ¥300.00，尚未缴清" in page and "首单金额达到 ¥50.00" in page
    assert 'name="deposit_received"' not in page and 'name="first_order_confirmed"' not in page
    assert "尚未缴清" in refused
    assert Distributor.objects.get(pk=applicant.pk).status == DistributorStatus.APPLIED
