"""Spending a distributor's wallet: paying a shop order from the available balance.

The orders app calls ``debit_wallet_for_order`` from inside the transaction that marks the
order paid (under the order's row lock), so the debit and the payment stand or fall together.
The debit itself is ``pay_from_wallet``: the available account locked, once per reference,
never below zero — the same lock a withdrawal and a stock purchase take, so the three can
never overdraw one balance between them.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from distribution.selectors import distributor_for_user
from distribution.models import DistributorStatus

from .withdrawals import pay_from_wallet


def active_distributor_of(user):
    """The user's distributor if it is active, else ``None`` (a frozen agent spends nothing)."""
    distributor = distributor_for_user(user)
    if distributor is None or distributor.status != DistributorStatus.ACTIVE:
        return None
    return distributor


def debit_wallet_for_order(*, payer, order, amount: Decimal) -> str:
    """Take ``amount`` for ``order`` from ``payer``'s (a user's) available balance; returns the
    journal reference. Raises ``ValidationError`` (nothing changed) when the payer is no active
    distributor or the balance is short."""
    distributor = active_distributor_of(payer)
    if distributor is None:
        raise ValidationError(_("只有正常状态的分销商可以使用余额支付"))
    journal = pay_from_wallet(
        distributor=distributor, amount=amount, reference=order.order_no
    )
    return journal.reference
