from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from commissions import selectors
from commissions.models import Commission, JournalEntry, JournalTransaction
from commissions.services import split_commissions

from .factories import make_chain, make_order

# The bench's ``split_queries`` (issue 5, target ≤ 10): the order locked, every input in one
# statement (policy, depth, "already split?", bonus, campaigns, the chain, rules, tiers, the
# accounts), and one statement for the commission rows, the journal transaction, its entries
# and the cached balances.
SPLIT_QUERIES = 3


@pytest.mark.django_db
def test_a_three_level_split_with_its_ledger_entries_stays_within_a_fixed_number_of_queries(
    django_assert_max_num_queries,
):
    seller, parent, grandparent = make_chain(3)
    split_commissions(order=make_order(seller))  # accounts exist from now on
    order = make_order(seller)

    with django_assert_max_num_queries(SPLIT_QUERIES):
        assert len(split_commissions(order=order)) == 3

    assert [tuple(selectors.wallet(d).values())[0] for d in (seller, parent, grandparent)] == [
        Decimal("20.00"),
        Decimal("10.00"),
        Decimal("4.00"),
    ]
    assert selectors.ledger_differences()["accounts"] == []


@pytest.mark.django_db
def test_a_second_split_of_the_same_order_reads_and_writes_nothing_new():
    seller, *_rest = make_chain(3)
    order = make_order(seller)
    first = split_commissions(order=order)
    counts = (Commission.objects.count(), JournalTransaction.objects.count(), JournalEntry.objects.count())

    with CaptureQueriesContext(connection) as queries:
        again = split_commissions(order=order)

    assert [c.pk for c in again] == [c.pk for c in first]
    assert (Commission.objects.count(), JournalTransaction.objects.count(), JournalEntry.objects.count()) == counts
    # reads only: SELECTs (the read of the split's inputs is one too)
    assert not [q for q in queries.captured_queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert len(queries.captured_queries) == 3  # the locked order, "already split?", its rows
