import pytest

from commissions.services import split_commissions

from .factories import make_chain, make_order


@pytest.mark.django_db
def test_a_three_level_split_with_its_ledger_entries_stays_within_a_fixed_number_of_queries(
    django_assert_max_num_queries,
):
    seller, *_rest = make_chain(3)
    split_commissions(order=make_order(seller))  # accounts exist from now on
    order = make_order(seller)

    # lock, existing rows, policy, depth, chain, rules, campaigns, tiers, bonus, insert,
    # accounts ×2, journal (look-up, insert, entries), one balance update per account;
    # savepoints make up the rest
    with django_assert_max_num_queries(21):
        assert len(split_commissions(order=order)) == 3
