"""The one posting service: every money move in Kamen's books goes through
``post_journal_transaction`` (one transaction) or ``post_journal_transactions`` (many).

It checks in Python what PostgreSQL checks again at commit (migration 0002): every line is a
positive whole-fen amount, debits equal credits. It writes the transactions, their entries and
moves each account's cached balance in the same database transaction — in one
statement whatever the number of transactions, locking the accounts in primary-key order
before updating any, so two postings never deadlock. A ``reference`` already posted is left as
it was (``post_journal_transaction`` returns the earlier transaction): the caller's idempotency
key.

One more entry point, for the hot path of every delivery: ``post_accrual`` writes an order's
commission rows and posts their accrual together, in one prepared statement that
moves the balances with the same SQL as ``post_journal_transactions``.
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from kamen.db import fetch_rows, fetch_rows_in_one_round_trip
from kamen.money import FEN, ZERO

from .. import sql as commissions_sql
from ..models import (
    DISTRIBUTOR_KINDS,
    Account,
    AccountKind,
    Commission,
    CommissionStatus,
    EntrySide,
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
    return Line(account, EntrySide.CREDIT, amount, getattr(commission, "pk", commission))


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
        found = {a.kind: a for a in Account.objects.filter(distributor_id=distributor_id)}
    return found


def accounts_of_kind(distributor_ids, kind: str) -> dict[int, Account]:
    """One account of ``kind`` for each distributor (one query when they all exist)."""
    ids = set(distributor_ids)
    found = {a.distributor_id: a for a in Account.objects.filter(kind=kind, distributor_id__in=ids)}
    if len(found) < len(ids):
        for distributor_id in ids - set(found):
            found[distributor_id] = distributor_accounts(distributor_id)[kind]
    return found


def wallet_accounts(distributor_ids) -> dict[int, dict[str, Account]]:
    """Each distributor's pending / available / frozen accounts, for many distributors: one
    query when they all exist, one insert and one more query when some do not."""
    ids = list(distributor_ids)
    found: dict[int, dict[str, Account]] = defaultdict(dict)
    for account in Account.objects.filter(distributor_id__in=ids):
        found[account.distributor_id][account.kind] = account
    missing = [
        Account(kind=kind, distributor_id=distributor_id)
        for distributor_id in ids
        for kind in DISTRIBUTOR_KINDS
        if kind not in found[distributor_id]
    ]
    if missing:
        Account.objects.bulk_create(missing, ignore_conflicts=True)
        for account in Account.objects.filter(distributor_id__in={a.distributor_id for a in missing}):
            found[account.distributor_id][account.kind] = account
    return dict(found)


def distributor_account(distributor_id: int, kind: str) -> Account:
    return distributor_accounts(distributor_id)[kind]


def _check(lines: list[Line]) -> None:
    if len(lines) < 2:
        raise UnbalancedTransaction("a journal transaction needs at least two entries")
    totals = {EntrySide.DEBIT: ZERO, EntrySide.CREDIT: ZERO}
    for line in lines:
        amount = Decimal(line.amount)
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(FEN):
            raise UnbalancedTransaction(f"entry amount {line.amount} must be a positive whole-fen amount")
        if line.side not in totals:
            raise UnbalancedTransaction(f"unknown side {line.side!r}")
        totals[line.side] += amount
    if totals[EntrySide.DEBIT] != totals[EntrySide.CREDIT]:
        raise UnbalancedTransaction(f"debits {totals[EntrySide.DEBIT]} differ from credits {totals[EntrySide.CREDIT]}")


@dataclass(frozen=True)
class Posting:
    """One journal transaction to post: its idempotency ``reference`` and balanced lines."""

    kind: str
    reference: str
    lines: list[Line]
    memo: str = ""
    order_id: int | None = None
    actor_id: int | None = None


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
    posting = Posting(
        kind=kind,
        reference=reference,
        lines=lines,
        memo=memo,
        order_id=getattr(order, "pk", order),
        actor_id=actor.pk if getattr(actor, "is_authenticated", False) else None,
    )
    posted = post_journal_transactions([posting])
    if reference not in posted:
        return JournalTransaction.objects.get(reference=reference)
    return posted[reference]


def post_journal_transactions(postings: list[Posting]) -> dict[str, JournalTransaction]:
    """Post many balanced transactions at once; return the ones posted now, by reference.

    A reference already in the journal is skipped (posted once, whoever came first). It is
    one statement whatever the number of transactions: the transactions,
    their entries and every account's cached balance, with the accounts locked in primary-key
    order before any of them is updated (so two postings never deadlock).
    """
    for posting in postings:
        _check(posting.lines)
    references = [posting.reference for posting in postings]
    if len(set(references)) != len(references):
        raise UnbalancedTransaction("a reference appears twice in one posting")
    if not postings:
        return {}
    now = timezone.now()
    with transaction.atomic(savepoint=False):  # all or nothing with the caller
        connection = connections[router.db_for_write(JournalTransaction)]
        ids = _post_on_postgresql(connection, postings, now)
    return {
        posting.reference: JournalTransaction(
            pk=ids[posting.reference],
            kind=posting.kind,
            reference=posting.reference,
            memo=posting.memo[:200],
            order_id=posting.order_id,
            actor_id=posting.actor_id,
            created_at=now,
        )
        for posting in postings
        if posting.reference in ids
    }


def _post_on_postgresql(connection, postings: list[Posting], now) -> dict[str, int]:
    lines = [(posting.reference, line) for posting in postings for line in posting.lines]
    with connection.cursor() as cursor:
        cursor.execute(
            commissions_sql.POST,
            {
                "now": now,
                "kinds": [str(posting.kind) for posting in postings],
                "references": [posting.reference for posting in postings],
                "memos": [posting.memo[:200] for posting in postings],
                "orders": [posting.order_id for posting in postings],
                "actors": [posting.actor_id for posting in postings],
                "line_references": [reference for reference, _line in lines],
                "accounts": [line.account.pk for _reference, line in lines],
                "sides": [str(line.side) for _reference, line in lines],
                "amounts": [Decimal(line.amount) for _reference, line in lines],
                "commissions": [line.commission_id for _reference, line in lines],
            },
        )
        return {reference: pk for pk, reference in cursor.fetchall()}


@dataclass(frozen=True)
class AccrualLine:
    """One commission row of an order and the account (the beneficiary's pending) it credits."""

    beneficiary_id: int
    kind: str
    level: int
    rule_id: int | None
    description: str
    rate_bp: int
    amount: Decimal
    account_id: int


def post_accrual(
    *,
    order_id: int,
    reference: str,
    memo: str,
    revenue: int,
    lines: list[AccrualLine],
    base_amount: Decimal,
    available_at,
    cap: tuple[Decimal, str] | None = None,
    then=(),
) -> list[Commission]:
    """Write an order's commission rows and post their accrual (debit ``revenue``, credit each
    line's account); return the rows, in line order. With ``cap`` (computed amount, reason) a
    ``CapEvent`` records that the lines were capped. ``then``: statements ``(sql, params)`` of
    the caller's sent after it in the same round trip (the order's books of its delivery).

    The split's hot path: one prepared statement (rows, cap event, journal transaction,
    entries and balances, accounts locked as in ``post_journal_transactions``).
    ``UniqueConstraint(order, beneficiary, kind)`` refuses a second accrual of the same rows.
    """
    total = sum((line.amount for line in lines), ZERO)
    for line in lines:
        if line.amount <= 0 or line.amount != line.amount.quantize(FEN):
            raise UnbalancedTransaction(f"entry amount {line.amount} must be a positive whole-fen amount")
    if not lines:
        raise UnbalancedTransaction("a journal transaction needs at least two entries")
    now = timezone.now()
    connection = connections[router.db_for_write(JournalTransaction)]
    with transaction.atomic(savepoint=False):  # all or nothing with the caller
        accrual = (
            commissions_sql.ACCRUAL,
            {
                "beneficiaries": [line.beneficiary_id for line in lines],
                "kinds": [str(line.kind) for line in lines],
                "levels": [line.level for line in lines],
                "rules": [line.rule_id or 0 for line in lines],
                "descriptions": [line.description for line in lines],
                "rates": [line.rate_bp for line in lines],
                "amounts": [line.amount for line in lines],
                "accounts": [line.account_id for line in lines],
                "order": order_id,
                "base": base_amount,
                "available_at": available_at,
                "now": now,
                "computed": cap[0] if cap else None,
                "total": total,
                "cap_reason": cap[1][:200] if cap else "",
                "reference": reference,
                "memo": memo[:200],
                "revenue": revenue,
            },
        )
        then = list(then)
        rows = fetch_rows_in_one_round_trip([accrual, *then], rows_of=0) if then else fetch_rows(*accrual)
        ids = {(beneficiary, kind): pk for pk, beneficiary, kind in rows}
    # Built from what was written, without a read (from_db: no field-by-field __init__)
    attnames = [field.attname for field in Commission._meta.concrete_fields]
    made = []
    for line in lines:
        row = {
            "id": ids[(line.beneficiary_id, line.kind)],
            "order_id": order_id,
            "beneficiary_id": line.beneficiary_id,
            "kind": line.kind,
            "period": None,
            "stock_purchase_id": None,
            "level": line.level,
            "rule_id": line.rule_id,
            "rule_description": line.description,
            "rate_bp": line.rate_bp,
            "base_amount": base_amount,
            "amount": line.amount,
            "reversed_amount": ZERO,
            "status": CommissionStatus.PENDING,
            "available_at": available_at,
            "settled_at": None,
            "settlement_run_id": None,
            "created_at": now,
        }
        made.append(Commission.from_db(connection.alias, attnames, [row[name] for name in attnames]))
    return made


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
    "wallet_accounts",
    "merchant_account",
    "AccrualLine",
    "Posting",
    "post_accrual",
    "post_journal_transaction",
    "post_journal_transactions",
]
