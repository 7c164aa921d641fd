"""Deposits (保证金, docs/adr/0023): refundable security a grade may require, held in the ledger.

The deposit account (``distributor_deposit``, one per distributor, credits − debits: what the
merchant owes them back) is credited when the gateway's verified notification for a deposit
payment arrives (``hold_deposit``: debit gateway clearing, like an order's payment), and the
network is told what is held (``distribution.services.record_deposit_held``), which admits an
applicant once it is held in full.

Leaving the network, the distributor asks for it back (``request_deposit_refund``); finance
decides (``approve_deposit_refund`` / ``reject_deposit_refund``; four eyes: never about their
own account). On approval, in one transaction: the distributor leaves the network (cleared, or
an applicant rejected); when the merchant's rule ``deposit_covers_debt`` is on, the deposit
first covers a clawback debt (a negative available balance: ``deposit-offset:<id>``); the
rest moves to the available balance (``deposit-refund:<id>``) and straight out of it into a
withdrawal of its own, approved, paid by the payout adapters like any withdrawal
(``withdrawal:<id>``; no fee, no tax: it is the distributor's own money, not income). A payout
that fails returns the money to the available balance, as for any withdrawal.

Lock order (so nothing here deadlocks with a payment or a withdrawal): the tree lock, the
refund request, the deposit account, the available account, then the distributor's row — a
wallet payment takes the tree lock (its sale) before the available account, and a deposit's
notification takes its accounts before the distributor's row.
"""

import secrets
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from distribution.services import (
    leave_network,
    lock_tree,
    record_deposit_held,
    record_deposit_returned,
)
from distribution.services.four_eyes import require_not_own_distributor
from kamen.audit import record_audit
from kamen.money import ZERO, InvalidAmount, parse_amount

from ..models import (
    Account,
    AccountKind,
    DepositRefund,
    DepositRefundStatus,
    JournalTransaction,
    TransactionKind,
    Withdrawal,
    WithdrawalStatus,
    WithdrawalStatusChange,
)
from .ledger import (
    credit,
    debit,
    distributor_account,
    lock_account,
    merchant_account,
    post_journal_transaction,
)
from .rules import get_policy
from .withdrawal_states import _transition
from .withdrawals import _withdrawal_lines

__all__ = [
    "approve_deposit_refund",
    "deposit_account",
    "deposit_balance",
    "hold_deposit",
    "new_deposit_refund_token",
    "reject_deposit_refund",
    "request_deposit_refund",
]


def deposit_account(distributor_id: int) -> Account:
    account, _created = Account.objects.get_or_create(
        kind=AccountKind.DISTRIBUTOR_DEPOSIT, distributor_id=distributor_id
    )
    return account


def deposit_balance(distributor_id: int) -> Decimal:
    """The deposit the merchant holds for the distributor now."""
    found = (
        Account.objects.filter(kind=AccountKind.DISTRIBUTOR_DEPOSIT, distributor_id=distributor_id)
        .values_list("balance", flat=True)
        .first()
    )
    return found if found is not None else ZERO


def _positive(raw) -> Decimal:
    try:
        return parse_amount(raw)
    except InvalidAmount:
        raise ValidationError(_("请输入正确的金额（大于 0，最多两位小数）")) from None


def hold_deposit(*, distributor_id: int, amount, reference: str) -> JournalTransaction:
    """A deposit paid through the gateway: held in the deposit account, once per ``reference``
    (the deposit payment's number), in the caller's transaction (the notification's)."""
    amount = _positive(amount)
    full_reference = f"deposit:{reference}"
    with transaction.atomic(savepoint=False):
        existing = JournalTransaction.objects.filter(reference=full_reference).first()
        if existing is not None:
            return existing
        account = deposit_account(distributor_id)
        posted = post_journal_transaction(
            kind=TransactionKind.DEPOSIT,
            reference=full_reference,
            lines=[
                debit(merchant_account(AccountKind.GATEWAY_CLEARING), amount),
                credit(account, amount),
            ],
            memo=_("保证金缴纳 %(reference)s") % {"reference": reference},
        )
        held = Account.objects.values_list("balance", flat=True).get(pk=account.pk)
        record_deposit_held(distributor_id=distributor_id, held=held)
    return posted


def new_deposit_refund_token() -> str:
    return secrets.token_urlsafe(24)


def request_deposit_refund(*, distributor, payout_account, token: str, reason: str = "") -> DepositRefund:
    """The distributor asks for their deposit back (and to leave the network). The same
    ``token`` returns the same request; a second open request is refused."""
    if not token:
        raise ValidationError(_("表单已过期，请刷新后重试"))
    existing = DepositRefund.objects.filter(request_token=token[:64]).first()
    if existing is not None:
        if existing.distributor_id != distributor.pk:
            raise ValidationError(_("表单已过期，请刷新后重试"))
        return existing
    held = deposit_balance(distributor.pk)
    if held <= 0:
        raise ValidationError(_("您没有可退还的保证金"))
    if payout_account is None or payout_account.distributor_id != distributor.pk or not payout_account.is_active:
        raise ValidationError(_("请选择自己的收款账户"))
    open_request = _("已有待审核的保证金退还申请，请等待商户处理")
    if DepositRefund.objects.filter(distributor=distributor, status=DepositRefundStatus.REQUESTED).exists():
        raise ValidationError(open_request)
    try:
        with transaction.atomic():
            refund = DepositRefund.objects.create(
                distributor=distributor,
                payout_account=payout_account,
                request_token=token[:64],
                amount=held,
                reason=str(reason or "").strip()[:200],
            )
            record_audit(
                actor=distributor.user,
                action="commissions.deposit_refund_requested",
                target=refund,
                changes={"amount": [None, str(held)]},
            )
    except IntegrityError:
        # The same token at the same moment, or another open request (the constraint).
        again = DepositRefund.objects.filter(request_token=token[:64]).first()
        if again is not None and again.distributor_id == distributor.pk:
            return again
        raise ValidationError(open_request) from None
    return refund


def _require_reviewer(actor) -> None:
    if actor is None or not actor.has_perm("commissions.review_deposit_refund"):
        raise PermissionDenied(_("没有审核保证金退还的权限"))


def _refund_withdrawal(refund: DepositRefund, available, amount: Decimal, actor) -> Withdrawal:
    """The refund's payout: a withdrawal of ``amount`` out of the available balance (just
    credited with it), approved at once (finance has just decided), paid after commit."""
    withdrawal = Withdrawal.objects.create(
        distributor_id=refund.distributor_id,
        payout_account=refund.payout_account,
        request_token=f"deposit-refund:{refund.pk}",
        payout_no="W" + timezone.now().strftime("%Y%m%d") + secrets.token_hex(8).upper(),
        amount=amount,
        net_amount=amount,
    )
    WithdrawalStatusChange.objects.create(
        withdrawal=withdrawal,
        old_status=WithdrawalStatus.REQUESTED,
        new_status=WithdrawalStatus.REQUESTED,
        cause="deposit refund",
    )
    post_journal_transaction(
        kind=TransactionKind.WITHDRAWAL,
        reference=f"withdrawal:{withdrawal.pk}",
        lines=_withdrawal_lines(withdrawal, available),
        memo=_("保证金退还打款 %(no)s") % {"no": withdrawal.payout_no},
        actor=actor,
    )
    withdrawal.reviewed_by = actor
    withdrawal.reviewed_at = timezone.now()
    _transition(
        withdrawal,
        WithdrawalStatus.APPROVED,
        cause="deposit refund approved",
        actor=actor,
        fields=("reviewed_by", "reviewed_at"),
    )
    from ..tasks import pay_withdrawal_task

    # robust: with the broker down the approval still stands (redrive_approved_withdrawals pays it)
    transaction.on_commit(lambda: pay_withdrawal_task.delay(withdrawal.pk), robust=True)
    return withdrawal


def approve_deposit_refund(*, refund: DepositRefund, actor, request=None) -> DepositRefund:
    """Finance gives the deposit back: the distributor leaves the network, the deposit covers a
    clawback debt first when the merchant's rule says so, the rest is paid out. Once: a
    second approval (or two at the same moment) finds it done."""
    _require_reviewer(actor)
    require_not_own_distributor(actor=actor, distributor=refund.distributor, what=_("保证金退还"))
    with transaction.atomic():
        lock_tree()  # leave_network below takes it: first, so the order is the same as a sale's
        locked = DepositRefund.objects.select_for_update().select_related("distributor").get(pk=refund.pk)
        if locked.status == DepositRefundStatus.APPROVED:
            return locked
        if locked.status != DepositRefundStatus.REQUESTED:
            raise ValidationError(_("该申请已%(status)s，不能再通过") % {"status": locked.get_status_display()})
        deposit = lock_account(deposit_account(locked.distributor_id))
        if deposit.balance <= 0:
            raise ValidationError(_("该分销商没有可退还的保证金"))
        if deposit.balance != locked.amount:
            raise ValidationError(
                _("保证金余额 ¥%(held)s 与申请金额 ¥%(amount)s 不符，请驳回后让分销商重新申请")
                % {"held": deposit.balance, "amount": locked.amount}
            )
        available = lock_account(distributor_account(locked.distributor_id, AccountKind.DISTRIBUTOR_AVAILABLE))
        debt = max(-available.balance, ZERO) if get_policy().deposit_covers_debt else ZERO
        offset = min(locked.amount, debt)
        rest = locked.amount - offset
        leave_network(
            distributor=locked.distributor,
            actor=actor,
            reason=_("退出网络，退还保证金"),
            request=request,
        )
        if offset > 0:
            post_journal_transaction(
                kind=TransactionKind.DEPOSIT_OFFSET,
                reference=f"deposit-offset:{locked.pk}",
                lines=[debit(deposit, offset), credit(available, offset)],
                memo=_("保证金抵扣佣金追回欠款"),
                actor=actor,
            )
        if rest > 0:
            post_journal_transaction(
                kind=TransactionKind.DEPOSIT_REFUND,
                reference=f"deposit-refund:{locked.pk}",
                lines=[debit(deposit, rest), credit(available, rest)],
                memo=_("保证金退还"),
                actor=actor,
            )
            locked.withdrawal = _refund_withdrawal(locked, available, rest, actor)
        locked.offset_amount = offset
        locked.refund_amount = rest
        locked.status = DepositRefundStatus.APPROVED
        locked.reviewed_by = actor
        locked.reviewed_at = timezone.now()
        locked.save(
            update_fields=[
                "offset_amount",
                "refund_amount",
                "status",
                "withdrawal",
                "reviewed_by",
                "reviewed_at",
            ]
        )
        record_deposit_returned(distributor_id=locked.distributor_id)
        record_audit(
            actor=actor,
            action="commissions.deposit_refund_approved",
            target=locked,
            request=request,
            changes={
                "status": [DepositRefundStatus.REQUESTED, DepositRefundStatus.APPROVED],
                "offset_amount": [None, str(offset)],
                "refund_amount": [None, str(rest)],
                "withdrawal": [None, locked.withdrawal.payout_no if locked.withdrawal else None],
            },
        )
    return locked


def reject_deposit_refund(*, refund: DepositRefund, actor, reason: str, request=None) -> DepositRefund:
    _require_reviewer(actor)
    require_not_own_distributor(actor=actor, distributor=refund.distributor, what=_("保证金退还"))
    reason = str(reason or "").strip()
    if not reason:
        raise ValidationError(_("请填写驳回原因"))
    with transaction.atomic():
        locked = DepositRefund.objects.select_for_update().get(pk=refund.pk)
        if locked.status == DepositRefundStatus.REJECTED:
            return locked
        if locked.status != DepositRefundStatus.REQUESTED:
            raise ValidationError(_("该申请已%(status)s，不能再驳回") % {"status": locked.get_status_display()})
        locked.status = DepositRefundStatus.REJECTED
        locked.reason = reason[:200]
        locked.reviewed_by = actor
        locked.reviewed_at = timezone.now()
        locked.save(update_fields=["status", "reason", "reviewed_by", "reviewed_at"])
        record_audit(
            actor=actor,
            action="commissions.deposit_refund_rejected",
            target=locked,
            request=request,
            changes={
                "status": [DepositRefundStatus.REQUESTED, DepositRefundStatus.REJECTED],
                "reason": [None, reason],
            },
        )
    return locked
