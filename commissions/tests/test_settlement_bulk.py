"""A settlement run over many commissions of many distributors, chunked: the books balance,
every commission settles exactly once, and two overlapping runs never settle one twice."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from commissions import selectors
from commissions.models import Commission, CommissionStatus, JournalTransaction, TransactionKind
from commissions.services import freeze_commissions, lifecycle, reverse_commissions, run_settlement, split_commissions

from .factories import make_chain, make_order, refund

LATER = timezone.now() + timedelta(days=8)


def _commissions_of_many_distributors(chains: int = 4, orders_per_chain: int = 6):
    """``chains`` three-level chains (distinct distributors), each seller selling ¥100 orders."""
    made = [make_chain(3) for _chain in range(chains)]
    orders = [make_order(chain[0]) for chain in made for _order in range(orders_per_chain)]
    for order in orders:
        split_commissions(order=order)
    return made, orders


@pytest.mark.django_db
def test_a_chunked_settlement_of_many_distributors_balances_the_books_and_settles_each_once(
    monkeypatch, owner_user
):
    monkeypatch.setattr(lifecycle, "SETTLEMENT_CHUNK", 7)  # 72 commissions: 11 chunks
    monkeypatch.setattr(lifecycle, "POSTINGS_PER_STATEMENT", 5)  # 12 distributors: 3 posts
    chains, orders = _commissions_of_many_distributors()
    reverse_commissions(order=refund(orders[0], "40.00"))  # 60 % of that order's split left
    held_seller = chains[3][0]
    freeze_commissions(distributor=held_seller, reason="风控", actor=owner_user)

    run = run_settlement(cycle="daily", now=LATER)
    again = run_settlement(cycle="daily", now=LATER)

    assert again.pk == run.pk
    held = Commission.objects.filter(beneficiary=held_seller)
    assert {c.status for c in held} == {CommissionStatus.PENDING}  # waits for the release
    settled = Commission.objects.filter(status=CommissionStatus.AVAILABLE)
    assert settled.count() == run.commission_count == 72 - held.count()
    assert set(settled.values_list("settlement_run", flat=True)) == {run.pk}
    # seller ¥10, parent ¥5, grandparent ¥2 per order; the refunded order pays 60 % of that
    assert run.total_amount == Decimal("17.00") * 24 - Decimal("6.80") - Decimal("10.00") * 6
    assert selectors.wallet(chains[0][0])["available"] == Decimal("56.00")  # 5 × 10 + 6
    assert selectors.wallet(chains[0][0])["pending"] == Decimal("0.00")
    assert selectors.wallet(chains[1][2])["available"] == Decimal("12.00")
    settlements = JournalTransaction.objects.filter(kind=TransactionKind.SETTLEMENT)
    assert settlements.count() == 11  # one per distributor who had money to move
    assert selectors.ledger_differences()["accounts"] == []
    assert selectors.ledger_differences()["transactions"] == []
    call_command("reconcile_ledger")  # raises CommandError on any difference


@pytest.mark.django_db(transaction=True)
def test_two_runs_of_different_cycles_at_the_same_moment_settle_each_commission_once(monkeypatch):
    monkeypatch.setattr(lifecycle, "SETTLEMENT_CHUNK", 5)
    chains, _orders = _commissions_of_many_distributors(chains=3, orders_per_chain=5)
    barrier = threading.Barrier(2)
    counts, errors = [], []

    def settle(cycle):
        try:
            barrier.wait()
            counts.append(run_settlement(cycle=cycle, now=LATER).commission_count)
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=settle, args=(cycle,)) for cycle in ("daily", "weekly")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(counts) == 45  # each commission in exactly one of the two runs
    assert not Commission.objects.filter(status=CommissionStatus.PENDING).exists()
    for seller, parent, grandparent in chains:
        assert selectors.wallet(seller)["available"] == Decimal("50.00")
        assert selectors.wallet(parent)["available"] == Decimal("25.00")
        assert selectors.wallet(grandparent)["available"] == Decimal("10.00")
    assert selectors.ledger_differences()["accounts"] == []
    call_command("reconcile_ledger")
