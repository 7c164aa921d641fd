"""Automatic withdrawal approval (issue 18 §3): finance's rules approve and pay a withdrawal
without a click; anything else waits for review; every automatic decision is audited with the
rule that made it; the rules are validated; manual decisions keep the four-eyes rule."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone

from commissions.models import AccountKind, AutoApprovalPolicy, TransactionKind, Withdrawal, WithdrawalStatus
from commissions.services import (
    add_payout_account,
    approve_withdrawal,
    get_auto_approval_policy,
    pay_withdrawal,
    request_withdrawal,
    save_auto_approval_policy,
)
from commissions.services.ledger import credit, debit, distributor_account, merchant_account, post_journal_transaction
from kamen.models import AuditLogEntry
from riskcontrol.models import RealNameVerification, ReviewCase

from .factories import UserFactory, make_chain, make_order

FUNDS = Decimal("5000.00")
RULES = {
    "is_enabled": True,
    "max_amount": "500.00",
    "min_verified_days": "30",
    "require_no_open_risk_case": True,
    "require_no_negative_balance": True,
    "daily_total_max": "1000.00",
}


@pytest.fixture(autouse=True)
def enqueued(monkeypatch):
    """Payout tasks enqueued after commit, by withdrawal id (no broker in these tests)."""
    from commissions import tasks

    ids = []
    monkeypatch.setattr(tasks.pay_withdrawal_task, "delay", lambda pk: ids.append(pk))
    return ids


def _staff(role="finance"):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def _rules(**changes):
    return save_auto_approval_policy(actor=_staff(), **(RULES | changes))


def _verified(agent, *, days_ago=60):
    verification = RealNameVerification.objects.create(
        distributor=agent,
        status="verified",
        name_mask="张*",
        id_number_mask="1101**********002X",
        id_number_index=f"index-{agent.pk}",
        bank_card_mask="6222 **** 0128",
        mobile_mask="138****5678",
        data_ciphertext=b"-",
        data_key_id="test",
        provider="sandbox",
    )
    RealNameVerification.objects.filter(pk=verification.pk).update(created_at=timezone.now() - timedelta(days=days_ago))


def _agent(*, days_verified=60, user=None):
    agent, *_rest = make_chain(1)
    if user is not None:
        agent.user = user
        agent.save(update_fields=["user"])
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
    _verified(agent, days_ago=days_verified)
    account = add_payout_account(distributor=agent, method="alipay", holder_name="张三", account="13800138000")
    return agent, account


def _request(agent, account, amount="100.00", token=None):
    return request_withdrawal(
        distributor=agent, payout_account=account, amount=amount, token=token or f"t-{agent.pk}-{amount}"
    )


def _audit(withdrawal, action):
    return AuditLogEntry.objects.filter(action=action, target_id=str(withdrawal.pk)).first()


@pytest.mark.django_db
def test_a_withdrawal_within_every_rule_is_approved_and_paid_without_a_click(
    enqueued, django_capture_on_commit_callbacks
):
    _rules()
    agent, account = _agent()

    with django_capture_on_commit_callbacks(execute=True):
        withdrawal = _request(agent, account, "100.00")

    assert withdrawal.status == WithdrawalStatus.APPROVED and withdrawal.auto_decision == "approved"
    assert withdrawal.reviewed_by is None
    entry = _audit(withdrawal, "commissions.withdrawal_auto_approved")
    assert entry.actor_name == "system"
    assert entry.changes["rule"] == [None, "auto_approval_policy"]
    assert "¥500.00" in entry.changes["policy"][1] and "30" in entry.changes["policy"][1]
    assert enqueued == [withdrawal.pk]
    assert pay_withdrawal(withdrawal_id=withdrawal.pk).status == WithdrawalStatus.PAID


def _open_risk_case(agent):
    ReviewCase.objects.create(order=make_order(agent), reasons="同一 IP 下单过多")


def _negative_balance(agent):
    post_journal_transaction(
        kind=TransactionKind.CLAWBACK,
        reference=f"debt:{agent.pk}",
        lines=[
            debit(distributor_account(agent.pk, AccountKind.DISTRIBUTOR_PENDING), Decimal("5.00")),
            credit(merchant_account(AccountKind.MERCHANT_REVENUE), Decimal("5.00")),
        ],
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rule", "amount", "days_verified", "setup"),
    [
        ("amount_above_limit", "500.01", 60, None),
        ("real_name_too_recent", "100.00", 29, None),
        ("open_risk_case", "100.00", 60, _open_risk_case),
        ("negative_balance", "100.00", 60, _negative_balance),
    ],
)
def test_a_withdrawal_breaking_a_rule_waits_for_review_and_the_rule_is_audited(
    enqueued, rule, amount, days_verified, setup
):
    _rules()
    agent, account = _agent(days_verified=days_verified)
    if setup:
        setup(agent)

    withdrawal = _request(agent, account, amount)

    assert withdrawal.status == WithdrawalStatus.REQUESTED and withdrawal.auto_decision == rule
    entry = _audit(withdrawal, "commissions.withdrawal_held_for_review")
    assert entry.changes["rule"] == [None, rule] and entry.changes["reason"][1]
    assert enqueued == []


@pytest.mark.django_db
def test_the_daily_total_counts_every_automatic_approval_of_the_day(enqueued):
    _rules(daily_total_max="500.00")
    first_agent, first_account = _agent()
    second_agent, second_account = _agent()

    first = _request(first_agent, first_account, "300.00")
    second = _request(second_agent, second_account, "300.00")
    third = _request(second_agent, second_account, "200.00")

    assert [w.auto_decision for w in (first, second, third)] == ["approved", "daily_total_exceeded", "approved"]


@pytest.mark.django_db
def test_with_the_policy_off_every_withdrawal_waits_and_nothing_is_logged_as_decided(enqueued):
    _rules(is_enabled=False)
    agent, account = _agent()

    withdrawal = _request(agent, account, "1.00")

    assert withdrawal.status == WithdrawalStatus.REQUESTED and withdrawal.auto_decision == ""
    assert not AuditLogEntry.objects.filter(action__startswith="commissions.withdrawal_").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_withdrawals_never_pass_the_daily_total_together(enqueued):
    _rules(max_amount="100.00", daily_total_max="250.00")
    agents = [_agent() for _ in range(6)]
    barrier = threading.Barrier(len(agents))
    errors = []

    def run(agent, account):
        try:
            barrier.wait()
            _request(agent, account, "100.00")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    decisions = sorted(Withdrawal.objects.values_list("auto_decision", flat=True))
    assert decisions == ["approved"] * 2 + ["daily_total_exceeded"] * 4
    assert Withdrawal.objects.filter(status=WithdrawalStatus.APPROVED).count() == 2


@pytest.mark.django_db
def test_a_held_withdrawal_still_needs_another_person_to_approve_it():
    _rules(max_amount="10.00", daily_total_max="10.00")
    reviewer = _staff()
    agent, account = _agent(user=reviewer)
    withdrawal = _request(agent, account, "100.00")
    assert withdrawal.auto_decision == "amount_above_limit"

    with pytest.raises(ValidationError, match="四眼原则"):
        approve_withdrawal(withdrawal=withdrawal, actor=reviewer)

    assert Withdrawal.objects.get(pk=withdrawal.pk).status == WithdrawalStatus.REQUESTED
    assert approve_withdrawal(withdrawal=withdrawal, actor=_staff()).status == WithdrawalStatus.APPROVED


# --- the rules: validated, audited, finance only -------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_amount", "-1.00"),
        ("max_amount", "abc"),
        ("max_amount", "1.001"),
        ("daily_total_max", "-500"),
        ("daily_total_max", "100.00"),  # below the single-withdrawal limit
        ("min_verified_days", "-1"),
        ("min_verified_days", "3.5"),
    ],
)
def test_bad_rules_are_refused_with_the_field_named_and_nothing_changes(field, value):
    before = list(AutoApprovalPolicy.objects.values())
    with pytest.raises(ValidationError) as refused:
        _rules(**{field: value})
    assert field in refused.value.message_dict
    assert list(AutoApprovalPolicy.objects.values()) == before
    assert not AuditLogEntry.objects.filter(action="commissions.auto_approval_policy_changed").exists()


@pytest.mark.django_db
def test_only_finance_may_change_the_rules():
    with pytest.raises(PermissionDenied):
        save_auto_approval_policy(actor=_staff("operator"), **RULES)
    assert get_auto_approval_policy().is_enabled is False


@pytest.mark.django_db
def test_finance_edits_the_rules_in_the_console_and_a_negative_amount_is_refused():
    finance = _staff()
    client = Client()
    client.force_login(finance)
    url = f"/admin/commissions/autoapprovalpolicy/{get_auto_approval_policy().pk}/change/"
    form = {"is_enabled": "on", "min_verified_days": "30", "require_no_open_risk_case": "on"}

    refused = client.post(url, form | {"max_amount": "-5.00", "daily_total_max": "100.00"})
    saved = client.post(url, form | {"max_amount": "200.00", "daily_total_max": "800.00"})

    assert refused.status_code == 200 and "不小于 0" in refused.content.decode()
    assert saved.status_code == 302
    policy = get_auto_approval_policy()
    assert (policy.is_enabled, policy.max_amount, policy.daily_total_max) == (
        True,
        Decimal("200.00"),
        Decimal("800.00"),
    )
    assert policy.require_no_negative_balance is False
    entries = AuditLogEntry.objects.filter(action="commissions.auto_approval_policy_changed")
    assert entries.count() == 1 and entries.get().actor == finance
