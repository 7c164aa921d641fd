from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from commissions.models import (
    Account,
    AccountKind,
    JournalEntry,
    JournalTransaction,
    TransactionKind,
)
from commissions.services.ledger import (
    UnbalancedTransaction,
    credit,
    debit,
    merchant_account,
    post_journal_transaction,
)


def _accounts():
    return merchant_account(AccountKind.MERCHANT_REVENUE), merchant_account(
        AccountKind.PAYOUTS_PAID
    )


@pytest.mark.django_db
def test_a_balanced_transaction_moves_both_cached_balances():
    revenue, paid = _accounts()

    post_journal_transaction(
        kind=TransactionKind.PAYOUT,
        reference="t-1",
        lines=[debit(revenue, Decimal("12.34")), credit(paid, Decimal("12.34"))],
    )

    revenue.refresh_from_db()
    paid.refresh_from_db()
    assert (revenue.balance, paid.balance) == (Decimal("-12.34"), Decimal("12.34"))


@pytest.mark.django_db
def test_posting_the_same_reference_twice_posts_once():
    revenue, paid = _accounts()
    lines = [debit(revenue, Decimal("5.00")), credit(paid, Decimal("5.00"))]

    first = post_journal_transaction(
        kind=TransactionKind.PAYOUT, reference="t-2", lines=lines
    )
    second = post_journal_transaction(
        kind=TransactionKind.PAYOUT, reference="t-2", lines=lines
    )

    assert first.pk == second.pk
    assert JournalEntry.objects.count() == 2
    paid.refresh_from_db()
    assert paid.balance == Decimal("5.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            lambda r, p: [debit(r, Decimal("5.00")), credit(p, Decimal("4.99"))],
            "differ",
        ),
        (lambda r, p: [debit(r, Decimal("5.00"))], "at least two"),
        (
            lambda r, p: [debit(r, Decimal("-1.00")), credit(p, Decimal("-1.00"))],
            "positive",
        ),
        (
            lambda r, p: [debit(r, Decimal("1.001")), credit(p, Decimal("1.001"))],
            "whole-fen",
        ),
    ],
)
def test_an_unbalanced_or_malformed_transaction_is_refused_and_changes_nothing(
    lines, message
):
    revenue, paid = _accounts()

    with pytest.raises(UnbalancedTransaction, match=message):
        post_journal_transaction(
            kind=TransactionKind.PAYOUT, reference="bad", lines=lines(revenue, paid)
        )

    assert not JournalTransaction.objects.exists()
    assert set(Account.objects.values_list("balance", flat=True)) == {Decimal("0.00")}


@pytest.mark.django_db
def test_the_database_refuses_to_update_or_delete_journal_rows():
    revenue, paid = _accounts()
    journal = post_journal_transaction(
        kind=TransactionKind.PAYOUT,
        reference="t-3",
        lines=[debit(revenue, Decimal("1.00")), credit(paid, Decimal("1.00"))],
    )

    for sql in (
        "UPDATE commissions_journalentry SET amount = 2",
        "DELETE FROM commissions_journalentry",
        "UPDATE commissions_journaltransaction SET memo = 'edited'",
        "DELETE FROM commissions_journaltransaction",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)

    assert JournalEntry.objects.filter(transaction=journal).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_to_commit_an_unbalanced_transaction():
    revenue, paid = _accounts()

    with pytest.raises(DatabaseError, match="unbalanced"), transaction.atomic():
        journal = JournalTransaction.objects.create(
            kind=TransactionKind.PAYOUT, reference="raw"
        )
        JournalEntry.objects.create(
            transaction=journal,
            account=revenue,
            side="debit",
            amount=Decimal("3.00"),
        )
        JournalEntry.objects.create(
            transaction=journal, account=paid, side="credit", amount=Decimal("2.00")
        )

    assert not JournalTransaction.objects.exists()


@pytest.mark.django_db
def test_reconcile_ledger_passes_on_consistent_books_and_reports_a_drifted_cache(
    capsys,
):
    revenue, paid = _accounts()
    post_journal_transaction(
        kind=TransactionKind.PAYOUT,
        reference="t-4",
        lines=[debit(revenue, Decimal("7.00")), credit(paid, Decimal("7.00"))],
    )
    call_command("reconcile_ledger")
    assert "ledger reconciled" in capsys.readouterr().out

    Account.objects.filter(pk=paid.pk).update(balance=Decimal("8.00"))

    with pytest.raises(CommandError, match="1 account"):
        call_command("reconcile_ledger")
    assert "cached 8.00 but entries sum to 7.00" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("entries", [0, 1])
def test_the_database_refuses_to_commit_a_transaction_with_fewer_than_two_entries(entries):
    """A journal transaction with no entries (or one) is refused at commit like an unbalanced
    one, whatever wrote it."""
    revenue, _paid = _accounts()

    with pytest.raises(DatabaseError, match="entries"), transaction.atomic():
        journal = JournalTransaction.objects.create(kind=TransactionKind.PAYOUT, reference=f"short-{entries}")
        for _index in range(entries):
            JournalEntry.objects.create(transaction=journal, account=revenue, side="debit", amount=Decimal("1.00"))

    assert not JournalTransaction.objects.filter(reference__startswith="short").exists()


@pytest.mark.django_db
def test_reconcile_ledger_reports_a_transaction_without_entries(capsys):
    """Written in a transaction that is never committed, so the commit-time check never runs:
    what reconcile would find if one had been stored before the check existed."""
    revenue, paid = _accounts()
    post_journal_transaction(
        kind=TransactionKind.PAYOUT,
        reference="t-5",
        lines=[debit(revenue, Decimal("7.00")), credit(paid, Decimal("7.00"))],
    )
    with transaction.atomic():
        empty = JournalTransaction.objects.create(kind=TransactionKind.PAYOUT, reference="empty")
        with pytest.raises(CommandError, match="1 transaction"):
            call_command("reconcile_ledger")
        transaction.set_rollback(True)  # else the test's teardown runs the commit-time check

    assert f"transaction {empty.pk} (empty): debits 0.00 credits 0.00 (0 entries)" in capsys.readouterr().out
