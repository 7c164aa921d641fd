"""Spending a distributor's wallet: paying a shop order from the available balance.

The orders app calls ``debit_wallet_for_order`` from inside the transaction that marks the
order paid (under the order's row lock), so the debit and the payment stand or fall together.
The debit itself is ``pay_from_wallet``: the available account locked, once per reference,
never below zero — the same lock a withdrawal and a stock purchase take, so the three can
never overdraw one balance between them.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from distribution.models import DistributorStatus
from distribution.selectors import distributor_for_user
from kamen.money import ZERO

from ..models import AccountKind, JournalTransaction, TransactionKind
from .ledger import (
    credit,
    debit,
    distributor_account,
    lock_account,
    merchant_account,
    post_journal_transaction,
)
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
    journal = pay_from_wallet(distributor=distributor, amount=amount, reference=order.order_no)
    return journal.reference


def credit_wallet_top_up(*, distributor_id: int, amount: Decimal, reference: str, fee: Decimal = ZERO):
    """Credit a prepaid top-up (预存款) paid through the gateway to the distributor's available
    balance; once per ``reference`` (the top-up's number), whatever the callback's retries.

    The counter-entry is the gateway's clearing account, as for a buyer's payment (the gateway
    holds the money for the merchant); the gateway's ``fee`` on it is the merchant's cost,
    passed from the merchant's profit to the fees account. The order later paid from the
    balance carries the sale (its wallet posting credits revenue).
    """
    if amount <= 0:
        raise ValidationError(_("充值金额必须大于 0"))
    if not ZERO <= fee <= amount:
        raise ValueError(f"a fee of {fee} on a top-up of {amount}")
    full_reference = f"topup:{reference}"
    with transaction.atomic():
        available = lock_account(distributor_account(distributor_id, AccountKind.DISTRIBUTOR_AVAILABLE))
        existing = JournalTransaction.objects.filter(reference=full_reference).first()
        if existing is not None:
            return existing
        lines = [
            debit(merchant_account(AccountKind.GATEWAY_CLEARING), amount),
            credit(available, amount),
        ]
        if fee:
            lines += [
                debit(merchant_account(AccountKind.MERCHANT_PROFIT), fee),
                credit(merchant_account(AccountKind.GATEWAY_FEES), fee),
            ]
        return post_journal_transaction(
            kind=TransactionKind.TOP_UP,
            reference=full_reference,
            lines=lines,
            memo=_("预存款充值 %(reference)s") % {"reference": reference},
        )
