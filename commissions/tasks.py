"""Celery tasks: take ids, call one service, safe to run twice."""

from celery import shared_task

from kamen.periodic import exclusive_periodic_job


@shared_task(
    acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
@exclusive_periodic_job
def settle_commissions_task(cycle: str) -> int | None:
    """Beat runs one entry per cycle; only the merchant's chosen cycle settles."""
    from .services import get_policy, run_settlement

    if get_policy().settlement_cycle != cycle:
        return None
    return run_settlement(cycle=cycle).pk


@shared_task(
    acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
def pay_withdrawal_task(withdrawal_id: int) -> str:
    from .services import pay_withdrawal

    return pay_withdrawal(withdrawal_id=withdrawal_id).status


@shared_task(acks_late=True)
@exclusive_periodic_job
def redrive_approved_withdrawals_task(older_than_minutes: int = 10) -> int:
    """Approved withdrawals whose payout task was lost (worker died before it ran) are sent
    again; ``pay_withdrawal`` claims each under its row lock, so a payout is never sent twice."""
    from datetime import timedelta

    from django.utils import timezone

    from .models import Withdrawal, WithdrawalStatus

    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    ids = list(
        Withdrawal.objects.filter(
            status=WithdrawalStatus.APPROVED, reviewed_at__lt=cutoff
        ).values_list("pk", flat=True)[:500]
    )
    for withdrawal_id in ids:
        pay_withdrawal_task.delay(withdrawal_id)
    return len(ids)


@shared_task(
    acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
@exclusive_periodic_job
def team_bonus_task(month: str | None = None) -> int:
    """Beat runs it on the 1st for the month just ended (``month`` "YYYY-MM" to re-run one);
    paying is idempotent, so a retry or a second run pays nothing more."""
    from datetime import date

    from .services import previous_month, run_team_bonuses

    period = (
        date.fromisoformat(f"{month}-01") if month else previous_month()
    )
    return len(run_team_bonuses(month=period))


@shared_task(acks_late=True)
@exclusive_periodic_job
def check_paying_withdrawals_task(older_than_minutes: int = 2) -> int:
    """Payouts whose result is still unknown (paying) are asked about at the provider, the
    least recently asked first; ``check_payout`` records each answer once."""
    from datetime import timedelta

    from django.db.models import F
    from django.utils import timezone

    from .models import Withdrawal, WithdrawalStatus
    from .services import check_payout

    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    ids = list(
        Withdrawal.objects.filter(status=WithdrawalStatus.PAYING, reviewed_at__lt=cutoff)
        .order_by(F("payout_checked_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[:200]
    )
    for withdrawal_id in ids:
        check_payout(withdrawal_id=withdrawal_id)
    return len(ids)
