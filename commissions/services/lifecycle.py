"""After the split: refunds reverse, settlement makes pending available, risk holds freeze.

Refunds (``reverse_commissions``) work on the order's cumulative refunded amount, so partial
refunds reverse proportionally, repeated or out-of-order signals reverse once, and a full
refund reverses every commission exactly. Before settlement the commission is cancelled out of
pending; after settlement (or withdrawal) a clawback is taken from available for every level
that earned — the balance may go negative and then blocks withdrawal until later earnings
bring it back. Nothing is capped at the current balance.

Settlement runs are keyed by cycle and period (``daily:2026-11-23``), unique in the database:
a second run of the same cycle returns the first. Commissions are locked ``SKIP LOCKED`` and
moved only while still pending, so two overlapping runs never settle one twice.
"""

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kamen.audit import record_audit
from kamen.money import ZERO, to_fen

from ..models import (
    AccountKind,
    Commission,
    CommissionStatus,
    JournalTransaction,
    SettlementCycle,
    SettlementRun,
    TransactionKind,
    WalletHold,
)
from .ledger import (
    credit,
    debit,
    distributor_account,
    distributor_accounts,
    merchant_account,
    post_journal_transaction,
)


# --- refunds ----------------------------------------------------------------------------------
def reverse_commissions(*, order) -> list[JournalTransaction]:
    """Bring the order's commissions in line with its refunded amount; return what was posted."""
    from orders.models import Order

    posted = []
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        paid = Decimal(locked.paid_amount)
        refunded = min(Decimal(locked.refunded_amount), paid)
        if paid <= 0 or refunded <= 0:
            return []
        revenue = merchant_account(AccountKind.MERCHANT_REVENUE)
        for commission in (
            Commission.objects.select_for_update().filter(order=locked).order_by("pk")
        ):
            target = (
                commission.amount
                if refunded >= paid
                else to_fen(commission.amount * refunded / paid)
            )
            delta = target - commission.reversed_amount
            if delta <= 0:
                continue
            is_settled = commission.status == CommissionStatus.AVAILABLE
            account = distributor_account(
                commission.beneficiary_id,
                AccountKind.DISTRIBUTOR_AVAILABLE
                if is_settled
                else AccountKind.DISTRIBUTOR_PENDING,
            )
            posted.append(
                post_journal_transaction(
                    kind=TransactionKind.CLAWBACK
                    if is_settled
                    else TransactionKind.CANCELLATION,
                    reference=f"reversal:{commission.pk}:{target}",
                    lines=[
                        debit(account, delta, commission=commission),
                        credit(revenue, delta, commission=commission),
                    ],
                    memo=_("订单 %(order)s 退款，冲回第 %(level)s 级佣金")
                    % {"order": locked.order_no, "level": commission.level},
                    order=locked,
                )
            )
            commission.reversed_amount = target
            fields = ["reversed_amount"]
            if target == commission.amount and not is_settled:
                commission.status = CommissionStatus.CANCELLED
                fields.append("status")
            commission.save(update_fields=fields)
    return posted


# --- settlement -------------------------------------------------------------------------------
def settlement_key(cycle: str, moment: datetime) -> str:
    local = timezone.localtime(moment)
    if cycle == SettlementCycle.DAILY:
        return f"daily:{local.date().isoformat()}"
    if cycle == SettlementCycle.WEEKLY:
        year, week, _day = local.isocalendar()
        return f"weekly:{year}-W{week:02d}"
    if cycle == SettlementCycle.MONTHLY:
        return f"monthly:{local:%Y-%m}"
    raise ValidationError(_("未知的结算周期：%(cycle)s") % {"cycle": cycle})


def run_settlement(
    *, cycle: str, now: datetime | None = None, key: str | None = None
) -> SettlementRun:
    """Settle every pending commission whose hold has passed (risk-held distributors wait).
    Once per cycle and period: a repeated run returns the first run unchanged."""
    now = now or timezone.now()
    key = key or settlement_key(cycle, now)
    with transaction.atomic():
        try:
            with transaction.atomic():
                run = SettlementRun.objects.create(key=key, cycle=cycle, cutoff=now)
        except IntegrityError:
            return SettlementRun.objects.get(key=key)
        held = WalletHold.objects.filter(is_active=True).values("distributor_id")
        due = list(
            Commission.objects.select_for_update(skip_locked=True)
            .filter(status=CommissionStatus.PENDING, available_at__lte=now)
            .exclude(beneficiary_id__in=held)
            .order_by("pk")
            .only("pk", "beneficiary_id", "amount", "reversed_amount")
        )
        by_beneficiary: dict[int, list[Commission]] = defaultdict(list)
        for commission in due:
            by_beneficiary[commission.beneficiary_id].append(commission)
        total = ZERO
        for beneficiary_id, commissions in sorted(by_beneficiary.items()):
            accounts = distributor_accounts(beneficiary_id)
            lines = []
            for commission in commissions:
                outstanding = commission.amount - commission.reversed_amount
                if outstanding > 0:
                    lines.append(
                        debit(
                            accounts[AccountKind.DISTRIBUTOR_PENDING],
                            outstanding,
                            commission=commission,
                        )
                    )
                    lines.append(
                        credit(
                            accounts[AccountKind.DISTRIBUTOR_AVAILABLE],
                            outstanding,
                            commission=commission,
                        )
                    )
                    total += outstanding
            if lines:
                post_journal_transaction(
                    kind=TransactionKind.SETTLEMENT,
                    reference=f"settlement:{run.pk}:{beneficiary_id}",
                    lines=lines,
                    memo=_("结算批次 %(key)s") % {"key": key},
                )
        Commission.objects.filter(pk__in=[c.pk for c in due]).update(
            status=CommissionStatus.AVAILABLE, settled_at=now, settlement_run=run
        )
        run.commission_count = len(due)
        run.total_amount = total
        run.finished_at = timezone.now()
        run.save(update_fields=["commission_count", "total_amount", "finished_at"])
    return run


# --- risk holds -------------------------------------------------------------------------------
def freeze_commissions(*, distributor, reason: str, actor, request=None) -> WalletHold:
    """Move the distributor's pending and available into frozen until released; settlement
    and withdrawals wait while the hold is active. A second freeze returns the active hold."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("请填写冻结原因"))
    with transaction.atomic():
        accounts = distributor_accounts(distributor.pk)
        from ..models import Account

        locked = {
            a.kind: a
            for a in Account.objects.select_for_update()
            .filter(pk__in=[a.pk for a in accounts.values()])
            .order_by("pk")
        }
        active = WalletHold.objects.filter(
            distributor=distributor, is_active=True
        ).first()
        if active is not None:
            return active
        pending = max(locked[AccountKind.DISTRIBUTOR_PENDING].balance, ZERO)
        available = max(locked[AccountKind.DISTRIBUTOR_AVAILABLE].balance, ZERO)
        hold = WalletHold.objects.create(
            distributor=distributor,
            reason=reason[:200],
            frozen_pending=pending,
            frozen_available=available,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        lines = []
        if pending > 0:
            lines += [
                debit(locked[AccountKind.DISTRIBUTOR_PENDING], pending),
                credit(locked[AccountKind.DISTRIBUTOR_FROZEN], pending),
            ]
        if available > 0:
            lines += [
                debit(locked[AccountKind.DISTRIBUTOR_AVAILABLE], available),
                credit(locked[AccountKind.DISTRIBUTOR_FROZEN], available),
            ]
        if lines:
            post_journal_transaction(
                kind=TransactionKind.FREEZE,
                reference=f"freeze:{hold.pk}",
                lines=lines,
                memo=reason,
                actor=actor,
            )
        record_audit(
            actor=actor,
            action="commissions.frozen",
            target=hold,
            changes={"reason": [None, reason]},
            request=request,
        )
    return hold


def release_commissions(*, distributor, actor, request=None) -> WalletHold | None:
    """Return what the active hold froze to pending and available."""
    with transaction.atomic():
        hold = (
            WalletHold.objects.select_for_update()
            .filter(distributor=distributor, is_active=True)
            .first()
        )
        if hold is None:
            return None
        accounts = distributor_accounts(distributor.pk)
        frozen = accounts[AccountKind.DISTRIBUTOR_FROZEN]
        lines = []
        if hold.frozen_pending > 0:
            lines += [
                debit(frozen, hold.frozen_pending),
                credit(accounts[AccountKind.DISTRIBUTOR_PENDING], hold.frozen_pending),
            ]
        if hold.frozen_available > 0:
            lines += [
                debit(frozen, hold.frozen_available),
                credit(
                    accounts[AccountKind.DISTRIBUTOR_AVAILABLE], hold.frozen_available
                ),
            ]
        if lines:
            post_journal_transaction(
                kind=TransactionKind.RELEASE,
                reference=f"release:{hold.pk}",
                lines=lines,
                actor=actor,
            )
        hold.is_active = False
        hold.released_at = timezone.now()
        hold.save(update_fields=["is_active", "released_at"])
        record_audit(
            actor=actor, action="commissions.released", target=hold, request=request
        )
    return hold


def has_active_hold(distributor_id: int) -> bool:
    return WalletHold.objects.filter(
        distributor_id=distributor_id, is_active=True
    ).exists()
