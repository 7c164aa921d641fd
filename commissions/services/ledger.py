"""The one posting service: every money move in Kamen's books goes through
``post_journal_transaction`` (one transaction) or ``post_journal_transactions`` (many).

It checks in Python what PostgreSQL checks again at commit (migration 0002): every line is a
positive whole-fen amount, debits equal credits. It writes the transactions, their entries and
moves each account's cached balance in the same database transaction — on PostgreSQL in one
statement whatever the number of transactions, locking the accounts in primary-key order
before updating any, so two postings never deadlock. A ``reference`` already posted is left as
it was (``post_journal_transaction`` returns the earlier transaction): the caller's idempotency
key.
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone

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
        for account in Account.objects.filter(
            distributor_id__in={a.distributor_id for a in missing}
        ):
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

    A reference already in the journal is skipped (posted once, whoever came first). On
    PostgreSQL it is one statement whatever the number of transactions: the transactions,
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
        if connection.vendor == "postgresql":
            ids = _post_on_postgresql(connection, postings, now)
        else:
            ids = _post_with_the_orm(postings, now)
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


# The locking CTE is read through a one-time filter (an InitPlan), so it has locked every
# account, in id order, before the UPDATE touches the first one.
_POST_SQL = """
WITH tx AS (
    INSERT INTO {journal} (kind, reference, memo, order_id, actor_id, created_at)
    SELECT t.kind, t.reference, t.memo, t.order_id, t.actor_id, %(now)s
      FROM unnest(%(kinds)s::varchar[], %(references)s::varchar[], %(memos)s::varchar[],
                  %(orders)s::bigint[], %(actors)s::bigint[]) WITH ORDINALITY
           AS t(kind, reference, memo, order_id, actor_id, n)
     ORDER BY t.n
    ON CONFLICT (reference) DO NOTHING
    RETURNING id, reference
), posted AS (
    INSERT INTO {entry} (transaction_id, account_id, side, amount, commission_id, created_at)
    SELECT tx.id, l.account_id, l.side, l.amount, l.commission_id, %(now)s
      FROM unnest(%(line_references)s::varchar[], %(accounts)s::bigint[], %(sides)s::varchar[],
                  %(amounts)s::numeric[], %(commissions)s::bigint[]) WITH ORDINALITY
           AS l(reference, account_id, side, amount, commission_id, n)
      JOIN tx ON tx.reference = l.reference
     ORDER BY l.n
    RETURNING account_id, side, amount
), deltas AS (
    SELECT account_id, SUM(CASE WHEN side = 'credit' THEN amount ELSE -amount END) AS delta
      FROM posted GROUP BY account_id
), locked AS (
    SELECT a.id FROM {account} a WHERE a.id IN (SELECT account_id FROM deltas)
     ORDER BY a.id FOR NO KEY UPDATE
), moved AS (
    UPDATE {account} a SET balance = a.balance + d.delta
      FROM deltas d
     WHERE a.id = d.account_id AND d.delta <> 0 AND (SELECT count(*) FROM locked) > 0
)
SELECT id, reference FROM tx
"""


def _post_on_postgresql(connection, postings: list[Posting], now) -> dict[str, int]:
    lines = [(posting.reference, line) for posting in postings for line in posting.lines]
    sql = _POST_SQL.format(
        journal=JournalTransaction._meta.db_table,
        entry=JournalEntry._meta.db_table,
        account=Account._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
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


def _post_with_the_orm(postings: list[Posting], now) -> dict[str, int]:
    """The same, one posting at a time (SQLite, the embedded mode)."""
    ids = {}
    for posting in postings:
        if JournalTransaction.objects.filter(reference=posting.reference).exists():
            continue
        journal = JournalTransaction.objects.create(
            kind=posting.kind,
            reference=posting.reference,
            memo=posting.memo[:200],
            order_id=posting.order_id,
            actor_id=posting.actor_id,
        )
        JournalEntry.objects.bulk_create(
            [
                JournalEntry(
                    transaction=journal,
                    account_id=line.account.pk,
                    side=line.side,
                    amount=Decimal(line.amount),
                    commission_id=line.commission_id,
                )
                for line in posting.lines
            ]
        )
        deltas: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for line in posting.lines:
            deltas[line.account.pk] += (
                line.amount if line.side == EntrySide.CREDIT else -line.amount
            )
        for account_pk in sorted(deltas):
            if deltas[account_pk]:
                Account.objects.filter(pk=account_pk).update(
                    balance=F("balance") + deltas[account_pk]
                )
        ids[posting.reference] = journal.pk
    return ids


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
    "Posting",
    "post_journal_transaction",
    "post_journal_transactions",
]
