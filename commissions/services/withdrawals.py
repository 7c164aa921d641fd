"""Withdrawals, payout accounts, wallet payments and the labour-remuneration tax.

Every move out of a distributor's available balance (a withdrawal, a wallet payment) first
locks that account row, so two at the same moment are serialised and can never overdraw it.
A withdrawal takes the whole amount out of available at once (into payouts in transit, tax
withheld and the merchant's fee), so a rejection or a failed payout returns exactly that.
The payout itself runs outside any transaction: claim (approved → paying), commit, call the
adapter, then record the outcome in a new transaction.

Tax (劳务报酬, withheld per month on the month's total withdrawals; ``labour_remuneration_tax``
has the rule). The month's tax always equals the rule applied to the month's paid or still
payable income (its withdrawals that were neither rejected nor failed): each withdrawal
withholds the month's tax so far less what the month already withheld, and when a withdrawal
is rejected or its payout fails the month is recomputed on what is left and the difference
posted (``tax-adjustment:<id>``, recorded as ``Withdrawal.tax_adjustment`` and shown on the
tax statement). The rule is not linear (800 deducted up to 4,000, 20 % above), so the
difference is usually returned but can be withheld: 3,000 and 1,000 requested, the 3,000
rejected (160 returned), 9,000 requested (1,560), then the 1,000 rejected — the 9,000 alone
owes 1,440, 40 more than the 1,400 still withheld for the month.
"""

import logging
import re
import secrets
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from distribution.services.four_eyes import require_not_own_distributor
from kamen import crypto
from kamen.audit import record_audit
from kamen.money import ZERO, InvalidAmount, parse_amount, round_half_up, to_fen

from ..models import (
    BASIS_POINTS,
    AccountKind,
    JournalTransaction,
    PayoutAccount,
    PayoutMethod,
    TransactionKind,
    Withdrawal,
    WithdrawalStatus,
    WithdrawalStatusChange,
)
from ..payouts import (
    NotificationAnswer,
    NotificationRefused,
    PayoutError,
    PayoutOutcome,
    PayoutResult,
    PayoutUnknown,
    get_payout_adapter,
)
from .auto_approval import auto_review_withdrawal
from .ledger import (
    credit,
    debit,
    distributor_account,
    lock_account,
    merchant_account,
    post_journal_transaction,
)
from .lifecycle import has_active_hold
from .rules import get_policy
from .withdrawal_states import _transition

logger = logging.getLogger(__name__)


class InsufficientBalance(ValidationError):
    pass


# --- tax --------------------------------------------------------------------------------------
def labour_remuneration_tax(income) -> Decimal:
    """The tax withheld on a month's labour remuneration ``income`` (预扣预缴, 预扣率表二).

    Income up to 800 owes nothing; up to 4,000 the taxable income is income − 800, taxed at
    20 %. Above 4,000 the taxable income is income × 80 %, and the bracket is chosen on that
    taxable income, not on the income: 20 % up to 20,000, 30 % less 2,000 up to 50,000, 40 %
    less 7,000 above. Rounded half-up to the fen.
    """
    income = Decimal(income)
    if income <= 800:
        return ZERO
    if income <= 4000:
        return round_half_up((income - 800) * Decimal("0.20"))
    taxable = income * Decimal("0.80")
    if taxable <= 20000:
        return round_half_up(taxable * Decimal("0.20"))
    if taxable <= 50000:
        return round_half_up(taxable * Decimal("0.30") - 2000)
    return round_half_up(taxable * Decimal("0.40") - 7000)


def _month_start(moment):
    local = timezone.localtime(moment)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _counted(distributor_id):
    """The distributor's withdrawals of income (a deposit's refund is their own money back:
    neither taxed nor counted against the daily limit)."""
    return Withdrawal.objects.filter(
        distributor_id=distributor_id, deposit_refund__isnull=True
    ).exclude(status__in=[WithdrawalStatus.REJECTED, WithdrawalStatus.FAILED])


def _next_month_start(start):
    return (start + timedelta(days=32)).replace(day=1)


def month_income_and_tax(*, distributor_id: int, moment) -> tuple[Decimal, Decimal]:
    """(paid or payable income, tax withheld net of adjustments) of the month of ``moment``."""
    start = _month_start(moment)
    counted = ~Q(status__in=[WithdrawalStatus.REJECTED, WithdrawalStatus.FAILED])
    month = Withdrawal.objects.filter(
        distributor_id=distributor_id,
        deposit_refund__isnull=True,
        created_at__gte=start,
        created_at__lt=_next_month_start(start),
    ).aggregate(
        income=Sum("amount", filter=counted, default=ZERO),
        tax=Sum("tax", filter=counted, default=ZERO),
        adjustments=Sum("tax_adjustment", default=ZERO),
    )
    return month["income"], month["tax"] + month["adjustments"]


def tax_due(*, distributor_id: int, amount: Decimal, now=None) -> Decimal:
    income, withheld = month_income_and_tax(
        distributor_id=distributor_id, moment=now or timezone.now()
    )
    return max(labour_remuneration_tax(income + amount) - withheld, ZERO)


def _recompute_month_tax(withdrawal: Withdrawal, available, *, actor=None) -> Decimal:
    """After ``withdrawal`` stopped counting (rejected, payout failed): post the difference
    between the rule on the month's remaining income and what the month withheld, and record
    it on the withdrawal. The caller holds the lock on the distributor's available account,
    so no other request or rejection of theirs computes the month at the same time."""
    income, withheld = month_income_and_tax(
        distributor_id=withdrawal.distributor_id, moment=withdrawal.created_at
    )
    difference = labour_remuneration_tax(income) - withheld
    if difference == 0:
        return difference
    tax_account = merchant_account(AccountKind.TAX_WITHHELD)
    if difference < 0:
        lines = [debit(tax_account, -difference), credit(available, -difference)]
        memo = _("本月个税重算，退还 ¥%(amount)s（%(no)s）")
    else:
        lines = [debit(available, difference), credit(tax_account, difference)]
        memo = _("本月个税重算，补扣 ¥%(amount)s（%(no)s）")
    post_journal_transaction(
        kind=TransactionKind.TAX_ADJUSTMENT,
        reference=f"tax-adjustment:{withdrawal.pk}",
        lines=lines,
        memo=memo % {"amount": abs(difference), "no": withdrawal.payout_no},
        actor=actor,
    )
    withdrawal.tax_adjustment = difference
    withdrawal.save(update_fields=["tax_adjustment"])
    return difference


def withdrawal_fee(amount: Decimal, policy) -> Decimal:
    return policy.withdrawal_fee_fixed + to_fen(
        amount * policy.withdrawal_fee_bp / BASIS_POINTS
    )


# --- payout accounts --------------------------------------------------------------------------
def luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def mask_account(method: str, account: str) -> str:
    if method == PayoutMethod.BANK_CARD:
        return f"**** **** **** {account[-4:]}"
    if "@" in account:
        name, _at, domain = account.partition("@")
        return f"{name[:1]}***@{domain}"
    return f"{account[:3]}****{account[-4:]}" if len(account) >= 7 else "****"


def add_payout_account(
    *, distributor, method: str, holder_name: str, account: str, bank_name: str = ""
) -> PayoutAccount:
    account = re.sub(r"\s+", "", account or "")
    holder_name = (holder_name or "").strip()
    if method not in PayoutMethod.values:
        raise ValidationError(_("不支持的收款方式"))
    if not holder_name:
        raise ValidationError(_("请填写户名（需与实名一致）"))
    if method == PayoutMethod.BANK_CARD:
        if not re.fullmatch(r"\d{12,19}", account, re.ASCII):
            raise ValidationError(_("银行卡号应为 12–19 位数字"))
        if not luhn_ok(account):
            raise ValidationError(_("银行卡号校验失败，请核对卡号"))
        if not bank_name.strip():
            raise ValidationError(_("请填写开户行"))
    elif method == PayoutMethod.ALIPAY:
        if not (
            re.fullmatch(r"1\d{10}", account, re.ASCII)
            or re.fullmatch(r"2088\d{12}", account, re.ASCII)
            or re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", account)
        ):
            raise ValidationError(_("支付宝账号应为手机号或邮箱（或 2088 开头的支付宝用户号）"))
    elif not re.fullmatch(r"[A-Za-z0-9_-]{6,40}", account):
        raise ValidationError(_("微信号应为 6–40 位字母、数字、下划线或减号"))
    key_id, blob = crypto.encrypt(
        account, associated_data=f"payout-account:{distributor.pk}".encode()
    )
    payout_account = PayoutAccount.objects.create(
        distributor=distributor,
        method=method,
        holder_name=holder_name[:40],
        bank_name=bank_name.strip()[:60],
        account_ciphertext=blob,
        account_key_id=key_id,
        account_mask=mask_account(method, account),
    )
    # Risk control links distributors who share a payout account (as a blind index only).
    from riskcontrol.services.signals import record_payout_account

    record_payout_account(distributor=distributor, account=account)
    return payout_account


def reveal_payout_account(payout_account: PayoutAccount) -> str:
    return crypto.decrypt(
        key_id=payout_account.account_key_id,
        blob=payout_account.account_ciphertext,
        associated_data=f"payout-account:{payout_account.distributor_id}".encode(),
    )


# --- requests ---------------------------------------------------------------------------------
def new_request_token() -> str:
    return secrets.token_urlsafe(24)


def _amount(raw) -> Decimal:
    try:
        return parse_amount(raw)
    except InvalidAmount:
        raise ValidationError(_("请输入正确的金额（大于 0，最多两位小数）")) from None


def request_withdrawal(
    *, distributor, payout_account, amount, token: str
) -> Withdrawal:
    """Take ``amount`` out of available for a payout; the same ``token`` returns the same
    withdrawal (a double submit pays once)."""
    amount = _amount(amount)
    if not token:
        raise ValidationError(_("表单已过期，请刷新后重试"))
    from riskcontrol.selectors import is_real_name_verified

    if not is_real_name_verified(distributor=distributor):
        raise ValidationError(_("提现前请先完成实名认证"))
    with transaction.atomic():
        existing = Withdrawal.objects.filter(request_token=token).first()
        if existing is not None:
            if existing.distributor_id != distributor.pk:
                raise ValidationError(_("表单已过期，请刷新后重试"))
            return existing
        available = lock_account(
            distributor_account(distributor.pk, AccountKind.DISTRIBUTOR_AVAILABLE)
        )
        if (
            payout_account is None
            or payout_account.distributor_id != distributor.pk
            or not payout_account.is_active
        ):
            raise ValidationError(_("请选择自己的收款账户"))
        if has_active_hold(distributor.pk):
            raise ValidationError(_("账户已被风控冻结，暂不能提现"))
        grade = distributor.grade
        if amount < grade.withdrawal_min_amount:
            raise ValidationError(
                _("单笔最低提现 ¥%(min)s") % {"min": grade.withdrawal_min_amount}
            )
        today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        today_total = (
            _counted(distributor.pk)
            .filter(created_at__gte=today)
            .aggregate(total=Sum("amount"))["total"]
            or ZERO
        )
        if today_total + amount > grade.withdrawal_daily_max_amount:
            raise ValidationError(
                _("超过每日提现上限 ¥%(max)s（今日已申请 ¥%(used)s）")
                % {"max": grade.withdrawal_daily_max_amount, "used": today_total}
            )
        if available.balance <= 0 or amount > available.balance:
            raise InsufficientBalance(
                _("可提现余额不足（当前 ¥%(balance)s）")
                % {"balance": available.balance}
            )
        policy = get_policy()
        fee = withdrawal_fee(amount, policy)
        tax = tax_due(distributor_id=distributor.pk, amount=amount)
        net = amount - fee - tax
        if net <= 0:
            raise ValidationError(
                _("手续费 ¥%(fee)s 与个税 ¥%(tax)s 不低于提现金额，无法提现")
                % {"fee": fee, "tax": tax}
            )
        try:
            with transaction.atomic():
                withdrawal = Withdrawal.objects.create(
                    distributor=distributor,
                    payout_account=payout_account,
                    request_token=token[:64],
                    payout_no="W"
                    + timezone.now().strftime("%Y%m%d")
                    + secrets.token_hex(8).upper(),
                    amount=amount,
                    fee=fee,
                    tax=tax,
                    net_amount=net,
                )
        except IntegrityError:
            return Withdrawal.objects.get(request_token=token[:64])
        WithdrawalStatusChange.objects.create(
            withdrawal=withdrawal,
            old_status=WithdrawalStatus.REQUESTED,
            new_status=WithdrawalStatus.REQUESTED,
            cause="requested",
        )
        post_journal_transaction(
            kind=TransactionKind.WITHDRAWAL,
            reference=f"withdrawal:{withdrawal.pk}",
            lines=_withdrawal_lines(withdrawal, available),
            memo=_("提现申请 %(no)s") % {"no": withdrawal.payout_no},
        )
    # Finance's automatic approval decides it now, in its own transaction (the request stands
    # whatever it decides).
    return auto_review_withdrawal(withdrawal_id=withdrawal.pk)


def _withdrawal_lines(withdrawal: Withdrawal, available):
    lines = [
        debit(available, withdrawal.amount),
        credit(merchant_account(AccountKind.PAYOUTS_IN_TRANSIT), withdrawal.net_amount),
    ]
    if withdrawal.tax > 0:
        lines.append(credit(merchant_account(AccountKind.TAX_WITHHELD), withdrawal.tax))
    if withdrawal.fee > 0:
        lines.append(
            credit(merchant_account(AccountKind.MERCHANT_REVENUE), withdrawal.fee)
        )
    return lines


def _return_funds(withdrawal: Withdrawal, *, cause: str, actor=None) -> None:
    available = distributor_account(
        withdrawal.distributor_id, AccountKind.DISTRIBUTOR_AVAILABLE
    )
    lines = [
        credit(line.account, line.amount)
        if line.side == "debit"
        else debit(line.account, line.amount)
        for line in _withdrawal_lines(withdrawal, available)
    ]
    post_journal_transaction(
        kind=TransactionKind.WITHDRAWAL_RETURN,
        reference=f"withdrawal-return:{withdrawal.pk}",
        lines=lines,
        memo=cause,
        actor=actor,
    )


def _require_reviewer(actor) -> None:
    if actor is None or not actor.has_perm("commissions.review_withdrawal"):
        raise PermissionDenied(_("没有审核提现的权限"))


def _require_not_own(withdrawal: Withdrawal, actor) -> None:
    """Four eyes: nobody approves or rejects their own withdrawal (a staff member who is also a
    distributor included)."""
    require_not_own_distributor(actor=actor, distributor=withdrawal.distributor, what=_("这笔提现"))


def approve_withdrawal(*, withdrawal: Withdrawal, actor, request=None) -> Withdrawal:
    _require_reviewer(actor)
    _require_not_own(withdrawal, actor)
    with transaction.atomic():
        locked = Withdrawal.objects.select_for_update().get(pk=withdrawal.pk)
        if locked.status != WithdrawalStatus.REQUESTED:
            return locked
        locked.reviewed_by = actor
        locked.reviewed_at = timezone.now()
        _transition(
            locked,
            WithdrawalStatus.APPROVED,
            cause="approved",
            actor=actor,
            fields=("reviewed_by", "reviewed_at"),
        )
        record_audit(
            actor=actor,
            action="commissions.withdrawal_approved",
            target=locked,
            request=request,
        )
        from ..tasks import pay_withdrawal_task

        # robust: with the broker down the approval still stands (redrive_approved_withdrawals pays it)
        transaction.on_commit(lambda: pay_withdrawal_task.delay(locked.pk), robust=True)
    return locked


def reject_withdrawal(
    *, withdrawal: Withdrawal, actor, reason: str, request=None
) -> Withdrawal:
    _require_reviewer(actor)
    _require_not_own(withdrawal, actor)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("请填写驳回原因"))
    with transaction.atomic():
        locked = Withdrawal.objects.select_for_update().get(pk=withdrawal.pk)
        if locked.status == WithdrawalStatus.REJECTED:
            return locked
        available = lock_account(
            distributor_account(locked.distributor_id, AccountKind.DISTRIBUTOR_AVAILABLE)
        )
        locked.reject_reason = reason[:200]
        locked.reviewed_by = actor
        locked.reviewed_at = timezone.now()
        _transition(
            locked,
            WithdrawalStatus.REJECTED,
            cause=reason,
            actor=actor,
            fields=("reject_reason", "reviewed_by", "reviewed_at"),
        )
        _return_funds(
            locked, cause=_("提现驳回：%(reason)s") % {"reason": reason}, actor=actor
        )
        _recompute_month_tax(locked, available, actor=actor)
        record_audit(
            actor=actor,
            action="commissions.withdrawal_rejected",
            target=locked,
            changes={"reason": [None, reason]},
            request=request,
        )
    return locked


def pay_withdrawal(*, withdrawal_id: int, adapter=None) -> Withdrawal:
    """Send an approved withdrawal to its payout adapter and record what it answers.

    Claimed (approved → paying) and committed before the call, so no lock is held across it
    and a second worker finds it paying and leaves it. A refusal returns the funds; a pending or
    unknown answer leaves it paying for ``check_payout`` to ask about (never failed on a guess)."""
    with transaction.atomic():
        locked = (
            Withdrawal.objects.select_for_update(of=("self",))
            .select_related("payout_account")
            .get(pk=withdrawal_id)
        )
        if locked.status != WithdrawalStatus.APPROVED:
            return locked
        _transition(locked, WithdrawalStatus.PAYING, cause="sent to payout adapter")
    return _send_payout(locked, adapter=adapter)


def _send_payout(withdrawal: Withdrawal, *, adapter=None) -> Withdrawal:
    adapter = adapter or get_payout_adapter(withdrawal.payout_account.method)
    try:
        result = adapter.pay(
            payout_no=withdrawal.payout_no,
            method=withdrawal.payout_account.method,
            account=reveal_payout_account(withdrawal.payout_account),
            holder_name=withdrawal.payout_account.holder_name,
            amount=withdrawal.net_amount,
        )
    except PayoutError as error:
        result = PayoutResult(
            outcome=PayoutOutcome.FAILED, failure_reason=str(error)[:200] or "payout failed"
        )
    except PayoutUnknown as error:
        logger.warning(
            "payout_result_unknown", extra={"payout_no": withdrawal.payout_no, "error": str(error)[:200]}
        )
        result = PayoutResult(outcome=PayoutOutcome.PENDING)
    return record_payout_result(withdrawal_id=withdrawal.pk, result=result)


def record_payout_result(*, withdrawal_id: int, result: PayoutResult) -> Withdrawal:
    """Apply a provider's answer (from the pay call, a query or a result callback) once.

    Under the withdrawal's row lock: only a paying withdrawal changes, so however many copies of
    one answer arrive together, the payout is booked (or its funds returned) exactly once."""
    with transaction.atomic():
        locked = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
        if locked.status != WithdrawalStatus.PAYING:
            return locked
        if result.outcome == PayoutOutcome.PENDING:
            if result.provider_payout_no and not locked.gateway_payout_no:
                locked.gateway_payout_no = result.provider_payout_no[:64]
                locked.save(update_fields=["gateway_payout_no"])
            return locked
        locked.finished_at = timezone.now()
        if result.outcome == PayoutOutcome.PAID:
            locked.gateway_payout_no = (result.provider_payout_no or locked.gateway_payout_no)[:64]
            _transition(
                locked,
                WithdrawalStatus.PAID,
                cause="payout succeeded",
                fields=("gateway_payout_no", "finished_at"),
            )
            post_journal_transaction(
                kind=TransactionKind.PAYOUT,
                reference=f"payout:{locked.pk}",
                lines=[
                    debit(merchant_account(AccountKind.PAYOUTS_IN_TRANSIT), locked.net_amount),
                    credit(merchant_account(AccountKind.PAYOUTS_PAID), locked.net_amount),
                ],
                memo=_("提现打款 %(no)s") % {"no": locked.payout_no},
            )
            return locked
        available = lock_account(
            distributor_account(locked.distributor_id, AccountKind.DISTRIBUTOR_AVAILABLE)
        )
        failure = (result.failure_reason or "payout failed")[:200]
        locked.failure_reason = failure
        _transition(
            locked,
            WithdrawalStatus.FAILED,
            cause=failure,
            fields=("failure_reason", "finished_at"),
        )
        _return_funds(locked, cause=_("打款失败，资金退回：%(reason)s") % {"reason": failure})
        _recompute_month_tax(locked, available)
    return locked


def record_payout_notification(*, method: str, body: bytes, headers) -> NotificationAnswer:
    """A provider's result notification: verified by the method's adapter, matched to its
    withdrawal by number and amount, recorded once (``record_payout_result``). Anything we
    cannot trust is refused and the provider retries; the 5-minute query covers the rest."""
    adapter = get_payout_adapter(method)
    try:
        notification = adapter.parse_notification(body=body, headers=headers)
    except NotificationRefused as error:
        logger.warning("payout_notification_refused", extra={"method": method, "error": str(error)[:200]})
        return adapter.answer_notification(accepted=False)
    withdrawal = (
        Withdrawal.objects.filter(payout_no=notification.payout_no, payout_account__method=method)
        .only("pk", "net_amount")
        .first()
    )
    if withdrawal is None or notification.amount not in (None, withdrawal.net_amount):
        logger.warning(
            "payout_notification_unmatched",
            extra={"method": method, "payout_no": notification.payout_no[:40], "amount": str(notification.amount)},
        )
        return adapter.answer_notification(accepted=False)
    record_payout_result(withdrawal_id=withdrawal.pk, result=notification.result)
    return adapter.answer_notification(accepted=True)


def check_payout(*, withdrawal_id: int, adapter=None, resend_after=timedelta(minutes=10)) -> Withdrawal:
    """Ask the provider about a paying withdrawal and record its answer.

    Unknown to the provider: if the payout was claimed more than ``resend_after`` ago (the
    request never arrived), it is sent again under the same number, which the provider
    deduplicates; sooner, it may still be in flight, so we wait."""
    withdrawal = Withdrawal.objects.select_related("payout_account").get(pk=withdrawal_id)
    if withdrawal.status != WithdrawalStatus.PAYING:
        return withdrawal
    adapter = adapter or get_payout_adapter(withdrawal.payout_account.method)
    Withdrawal.objects.filter(pk=withdrawal_id).update(payout_checked_at=timezone.now())
    try:
        result = adapter.query(payout_no=withdrawal.payout_no, amount=withdrawal.net_amount)
    except PayoutUnknown as error:
        logger.warning(
            "payout_query_unknown", extra={"payout_no": withdrawal.payout_no, "error": str(error)[:200]}
        )
        return withdrawal
    if result is None:
        claimed = (
            withdrawal.status_changes.filter(new_status=WithdrawalStatus.PAYING)
            .values_list("created_at", flat=True)
            .last()
        )
        if claimed is not None and timezone.now() - claimed < resend_after:
            return withdrawal
        return _send_payout(withdrawal, adapter=adapter)
    return record_payout_result(withdrawal_id=withdrawal_id, result=result)


# --- wallet payments --------------------------------------------------------------------------
def pay_from_wallet(*, distributor, amount, reference: str) -> JournalTransaction:
    """Pay the merchant from the distributor's available balance (the orders app's wallet
    payment); once per ``reference``; never overdraws, whatever runs at the same moment."""
    amount = _amount(amount)
    if not reference:
        raise ValidationError(_("缺少支付单号"))
    full_reference = f"wallet:{reference}"
    with transaction.atomic():
        available = lock_account(
            distributor_account(distributor.pk, AccountKind.DISTRIBUTOR_AVAILABLE)
        )
        existing = JournalTransaction.objects.filter(reference=full_reference).first()
        if existing is not None:
            return existing
        if has_active_hold(distributor.pk):
            raise ValidationError(_("账户已被风控冻结，暂不能使用余额"))
        if amount > available.balance:
            raise InsufficientBalance(
                _("可用余额不足（当前 ¥%(balance)s）") % {"balance": available.balance}
            )
        return post_journal_transaction(
            kind=TransactionKind.WALLET_PAYMENT,
            reference=full_reference,
            lines=[
                debit(available, amount),
                credit(merchant_account(AccountKind.MERCHANT_REVENUE), amount),
            ],
            memo=_("余额支付 %(reference)s") % {"reference": reference},
        )
