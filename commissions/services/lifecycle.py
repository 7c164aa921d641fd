"""After the split: refunds reverse, settlement makes pending available, risk holds freeze.

Refunds (``reverse_commissions``) work on the order's cumulative refunded amount, so partial
refunds reverse proportionally, repeated or out-of-order signals reverse once, and a full
refund reverses every commission exactly. Before settlement the commission is cancelled out of
pending; after settlement (or withdrawal) a clawback is taken from available for every level
that earned — the balance may go negative and then blocks withdrawal until later earnings
bring it back. Nothing is capped at the current balance.

Settlement runs are keyed by cycle and period (``daily:2026-11-23``), unique in the database:
a second run of the same cycle returns the first. A run holds a transaction-level advisory
lock, so runs of different cycles settle one after the other, and a commission moves only
while still pending (checked again on the row a concurrent refund left): two overlapping runs
never settle one twice. A run is set-based: a chunk of commissions per
statement, one journal transaction per distributor, posted in bulk (``bench/commissions.py``
measures it on 100,000 commissions).
"""

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from distribution.services.four_eyes import require_not_own_distributor
from kamen.audit import record_audit
from kamen.money import ZERO, to_fen

from .. import sql as commissions_sql
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
    Posting,
    credit,
    debit,
    distributor_account,
    distributor_accounts,
    merchant_account,
    post_journal_transaction,
    post_journal_transactions,
    wallet_accounts,
)


# --- refunds ----------------------------------------------------------------------------------
def reverse_commissions(*, order) -> list[JournalTransaction]:
    """Bring the order's commissions in line with its refunded amount; return what was posted.

    ``order``: the refunded order as the orders app hands it over; its row is locked again
    here, so its refunded total is read under the lock."""
    posted = []
    with transaction.atomic():
        locked = type(order).objects.select_for_update().get(pk=order.pk)
        paid = Decimal(locked.paid_amount)
        refunded = min(Decimal(locked.refunded_amount), paid)
        if paid <= 0 or refunded <= 0:
            return []
        revenue = merchant_account(AccountKind.MERCHANT_REVENUE)
        for commission in Commission.objects.select_for_update().filter(order=locked).order_by("pk"):
            target = commission.amount if refunded >= paid else to_fen(commission.amount * refunded / paid)
            delta = target - commission.reversed_amount
            if delta <= 0:
                continue
            is_settled = commission.status == CommissionStatus.AVAILABLE
            account = distributor_account(
                commission.beneficiary_id,
                AccountKind.DISTRIBUTOR_AVAILABLE if is_settled else AccountKind.DISTRIBUTOR_PENDING,
            )
            posted.append(
                post_journal_transaction(
                    kind=TransactionKind.CLAWBACK if is_settled else TransactionKind.CANCELLATION,
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


SETTLEMENT_CHUNK = 25_000  # commissions moved per statement
POSTINGS_PER_STATEMENT = 5_000  # journal transactions per posting statement


def run_settlement(*, cycle: str, now: datetime | None = None, key: str | None = None) -> SettlementRun:
    """Settle every pending commission whose hold has passed (risk-held distributors wait).
    Once per cycle and period: a repeated run returns the first run unchanged.

    A run that finds nothing due is not recorded (its row is removed before the commit):
    the run returned is unsaved, ``pk`` None and ``commission_count`` 0, so callers can say
    "nothing due" and a second click never leaves an empty run in the list.

    Set-based: the due commissions are moved to available a chunk per statement (on
    PostgreSQL under a transaction-level advisory lock, so an overlapping run of another cycle
    waits and then finds them settled), then each distributor gets one journal transaction
    for the run — pending → available, the sum of their commissions' outstanding amounts —
    posted in bulk with the balance caches.
    """
    now = now or timezone.now()
    key = key or settlement_key(cycle, now)
    with transaction.atomic():
        try:
            with transaction.atomic():
                run = SettlementRun.objects.create(key=key, cycle=cycle, cutoff=now)
        except IntegrityError:
            return SettlementRun.objects.get(key=key)
        connection = connections[router.db_for_write(Commission)]
        owed: dict[int, Decimal] = defaultdict(lambda: ZERO)
        count, after = 0, 0
        while True:
            moved, last = _settle_chunk_on_postgresql(connection, run=run, now=now, after=after)
            for beneficiary_id, outstanding, settled in moved:
                owed[beneficiary_id] += outstanding
                count += settled
            if last is None:
                break
            after = last
        if not count:
            run.delete()  # nothing was due: no run (the instance keeps its values, pk None)
            return run
        _post_settlement(run, key, {pk: total for pk, total in owed.items() if total})
        run.commission_count = count
        run.total_amount = sum(owed.values(), ZERO)
        run.finished_at = timezone.now()
        run.save(update_fields=["commission_count", "total_amount", "finished_at"])
    return run


def _settle_chunk_on_postgresql(connection, *, run, now, after):
    """((beneficiary, outstanding, commissions), …) of one chunk and its last id (None: done)."""
    with connection.cursor() as cursor:
        if not after:
            cursor.execute(commissions_sql.LOCK_SETTLEMENT, [commissions_sql.SETTLEMENT_LOCK])
        cursor.execute(
            commissions_sql.SETTLE_CHUNK,
            {"now": now, "after": after, "chunk": SETTLEMENT_CHUNK, "run": run.pk},
        )
        rows = cursor.fetchall()
    moved = [
        (beneficiary, outstanding, settled)
        for beneficiary, outstanding, settled, _last in rows
        if beneficiary is not None
    ]
    return moved, rows[0][3]  # the chunk's last id, None when nothing was due


def _post_settlement(run, key: str, owed: dict[int, Decimal]) -> None:
    """One pending → available transaction per distributor, in bulk."""
    beneficiaries = sorted(owed)
    memo = _("结算批次 %(key)s") % {"key": key}
    for start in range(0, len(beneficiaries), POSTINGS_PER_STATEMENT):
        batch = beneficiaries[start : start + POSTINGS_PER_STATEMENT]
        accounts = wallet_accounts(batch)
        post_journal_transactions(
            [
                Posting(
                    kind=TransactionKind.SETTLEMENT,
                    reference=f"settlement:{run.pk}:{beneficiary_id}",
                    lines=[
                        debit(
                            accounts[beneficiary_id][AccountKind.DISTRIBUTOR_PENDING],
                            owed[beneficiary_id],
                        ),
                        credit(
                            accounts[beneficiary_id][AccountKind.DISTRIBUTOR_AVAILABLE],
                            owed[beneficiary_id],
                        ),
                    ],
                    memo=memo,
                )
                for beneficiary_id in batch
            ]
        )


# --- risk holds -------------------------------------------------------------------------------
def _require_not_own_hold(distributor, actor) -> None:
    """Four eyes: nobody freezes or releases their own commissions."""
    require_not_own_distributor(actor=actor, distributor=distributor, what=_("冻结或解冻佣金"))


def freeze_commissions(*, distributor, reason: str, actor, request=None) -> WalletHold:
    """Move the distributor's pending and available into frozen until released; settlement
    and withdrawals wait while the hold is active. A second freeze returns the active hold."""
    _require_not_own_hold(distributor, actor)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("请填写冻结原因"))
    with transaction.atomic():
        accounts = distributor_accounts(distributor.pk)
        from ..models import Account

        locked = {
            a.kind: a
            for a in Account.objects.select_for_update().filter(pk__in=[a.pk for a in accounts.values()]).order_by("pk")
        }
        active = WalletHold.objects.filter(distributor=distributor, is_active=True).first()
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
    _require_not_own_hold(distributor, actor)
    with transaction.atomic():
        hold = WalletHold.objects.select_for_update().filter(distributor=distributor, is_active=True).first()
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
                credit(accounts[AccountKind.DISTRIBUTOR_AVAILABLE], hold.frozen_available),
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
        record_audit(actor=actor, action="commissions.released", target=hold, request=request)
    return hold


def has_active_hold(distributor_id: int) -> bool:
    return WalletHold.objects.filter(distributor_id=distributor_id, is_active=True).exists()
