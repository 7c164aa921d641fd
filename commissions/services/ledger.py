"""The one posting service: every money move in Kamen's books goes through
``post_journal_transaction``.

It checks in Python what PostgreSQL checks again at commit (migration 0002): every line is a
positive whole-fen amount, debits equal credits. It writes the transaction and its entries and
moves each account's cached balance with ``F()`` in the same database transaction, touching
accounts in primary-key order so two postings never deadlock. A ``reference`` already posted
returns the earlier transaction unchanged: the caller's idempotency key.
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F

from kamen.money import FEN, ZERO

from ..models import (
    DISTRIBUTOR_KINDS,
    Account,
    AccountKind,
    EntrySide,
    JournalEntry,
    JournalTransaction,
)


class UnbalancedTransaction(ValueError):
    pass


@dataclass(frozen=True)
class Line:
    account: Account
    side: str
    amount: Decimal
    commission_id: int | None = None


def debit(account: Account, amount: Decimal, *, commission=None) -> Line:
    return Line(account, EntrySide.DEBIT, amount, getattr(commission, "pk", commission))


def credit(account: Account, amount: Decimal, *, commission=None) -> Line:
    return Line(
        account, EntrySide.CREDIT, amount, getattr(commission, "pk", commission)
    )


def merchant_account(kind: str) -> Account:
    account = Account.objects.filter(kind=kind, distributor__isnull=True).first()
    if account is None:
        try:
            with transaction.atomic():
                account = Account.objects.create(kind=kind)
        except IntegrityError:
            account = Account.objects.get(kind=kind, distributor__isnull=True)
    return account


def distributor_accounts(distributor_id: int) -> dict[str, Account]:
    """The distributor's pending / available / frozen accounts, created on first use."""
    found = {a.kind: a for a in Account.objects.filter(distributor_id=distributor_id)}
    missing = [kind for kind in DISTRIBUTOR_KINDS if kind not in found]
    if missing:
        Account.objects.bulk_create(
            [Account(kind=kind, distributor_id=distributor_id) for kind in missing],
            ignore_conflicts=True,
        )
        found = {
            a.kind: a for a in Account.objects.filter(distributor_id=distributor_id)
        }
    return found


def accounts_of_kind(distributor_ids, kind: str) -> dict[int, Account]:
    """One account of ``kind`` for each distributor (one query when they all exist)."""
    ids = set(distributor_ids)
    found = {
        a.distributor_id: a
        for a in Account.objects.filter(kind=kind, distributor_id__in=ids)
    }
    if len(found) < len(ids):
        for distributor_id in ids - set(found):
            found[distributor_id] = distributor_accounts(distributor_id)[kind]
    return found


def distributor_account(distributor_id: int, kind: str) -> Account:
    return distributor_accounts(distributor_id)[kind]


def _check(lines: list[Line]) -> None:
    if len(lines) < 2:
        raise UnbalancedTransaction("a journal transaction needs at least two entries")
    totals = {EntrySide.DEBIT: ZERO, EntrySide.CREDIT: ZERO}
    for line in lines:
        amount = Decimal(line.amount)
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(FEN):
            raise UnbalancedTransaction(
                f"entry amount {line.amount} must be a positive whole-fen amount"
            )
        if line.side not in totals:
            raise UnbalancedTransaction(f"unknown side {line.side!r}")
        totals[line.side] += amount
    if totals[EntrySide.DEBIT] != totals[EntrySide.CREDIT]:
        raise UnbalancedTransaction(
            f"debits {totals[EntrySide.DEBIT]} differ from credits {totals[EntrySide.CREDIT]}"
        )


def post_journal_transaction(
    *,
    kind: str,
    reference: str,
    lines: list[Line],
    memo: str = "",
    order=None,
    actor=None,
) -> JournalTransaction:
    """Post a balanced transaction once per ``reference``; return it (or the earlier one)."""
    _check(lines)
    with transaction.atomic(savepoint=False):  # all or nothing with the caller
        existing = JournalTransaction.objects.filter(reference=reference).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                journal = JournalTransaction.objects.create(
                    kind=kind,
                    reference=reference,
                    memo=memo[:200],
                    order=order,
                    actor=actor if getattr(actor, "is_authenticated", False) else None,
                )
        except IntegrityError:
            return JournalTransaction.objects.get(reference=reference)
        JournalEntry.objects.bulk_create(
            [
                JournalEntry(
                    transaction=journal,
                    account=line.account,
                    side=line.side,
                    amount=Decimal(line.amount),
                    commission_id=line.commission_id,
                )
                for line in lines
            ]
        )
        deltas: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for line in lines:
            deltas[line.account.pk] += (
                line.amount if line.side == EntrySide.CREDIT else -line.amount
            )
        for account_pk in sorted(deltas):
            if deltas[account_pk]:
                Account.objects.filter(pk=account_pk).update(
                    balance=F("balance") + deltas[account_pk]
                )
    return journal


def lock_account(account: Account) -> Account:
    """The account row, locked for a read-then-write (withdrawal, wallet payment)."""
    return Account.objects.select_for_update().get(pk=account.pk)


__all__ = [
    "AccountKind",
    "Line",
    "UnbalancedTransaction",
    "credit",
    "debit",
    "distributor_account",
    "distributor_accounts",
    "lock_account",
    "merchant_account",
    "post_journal_transaction",
]
