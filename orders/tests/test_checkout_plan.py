"""The one-statement checkout's plan on a realistic volume: picking the keys must walk the
partial index of available keys, in the generic plan a long-lived session ends up with too
(the lesson of the risk check, ADR 0008)."""

import pytest

from catalog.services import card_keys
from catalog.tests.test_claim_plan import TABLE, realistic_stock  # noqa: F401 (a fixture)
from kamen.tests.plans import explain, statements_run_by
from orders.services import place_order


def _generic_plan(product) -> str:
    product.is_on_shelf = True
    product.save(update_fields=["is_on_shelf"])
    with statements_run_by(card_keys) as statements:
        place_order(product=product, quantity=1, contact="plan@example.com", query_password="pass1234")
    (statement,) = [(sql, params) for sql, params in statements if "written AS" in sql]
    return "\n".join(row[0] for row in explain(*statement, generic=True))


@pytest.mark.parametrize(("which", "index"), [(0, "card_key_available_idx"), (1, "card_key_available_exp_idx")])
def test_checkout_picks_its_keys_through_the_partial_index_even_in_the_generic_plan(
    realistic_stock,  # noqa: F811 (the fixture imported above)
    which,
    index,
):
    plan = _generic_plan(realistic_stock[which])

    assert index in plan, plan
    assert f"Seq Scan on {TABLE}" not in plan, plan
