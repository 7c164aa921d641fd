"""A withdrawal's states: one table of allowed moves, one function that makes them and
writes the status-change row (the request, finance's review, the automatic approval and the
payout all move withdrawals through it)."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from ..models import Withdrawal, WithdrawalStatus, WithdrawalStatusChange

ALLOWED = {
    WithdrawalStatus.REQUESTED: {WithdrawalStatus.APPROVED, WithdrawalStatus.REJECTED},
    WithdrawalStatus.APPROVED: {WithdrawalStatus.PAYING},
    WithdrawalStatus.PAYING: {WithdrawalStatus.PAID, WithdrawalStatus.FAILED},
}


def _transition(
    withdrawal: Withdrawal, to_status: str, *, cause: str, actor=None, fields=()
) -> None:
    if to_status not in ALLOWED.get(withdrawal.status, set()):
        raise ValidationError(
            _("提现单状态为“%(old)s”，不能变为“%(new)s”")
            % {
                "old": withdrawal.get_status_display(),
                "new": WithdrawalStatus(to_status).label,
            }
        )
    old = withdrawal.status
    withdrawal.status = to_status
    withdrawal.save(update_fields=["status", *fields])
    WithdrawalStatusChange.objects.create(
        withdrawal=withdrawal,
        old_status=old,
        new_status=to_status,
        cause=cause[:200],
        actor=actor if getattr(actor, "is_authenticated", False) else None,
    )
