"""Writes and hooks of the distribution network, its public face for other apps.

The distributor tree arrives with the distribution issue; until then the hooks here answer
"nothing known" so checkout works without a network.
"""


def attribution_for_referral(*, code: str) -> dict | None:
    """The attribution snapshot for a referral code, or None when the code is unknown.

    Checkout stores what this returns on the order, so later moves in the tree never change who
    earned what. The distribution issue fills it and must return::

        {"distributor_id": int, "chain": [ancestor ids, nearest first, at most 3],
         "link": "<link code or id>", "sub_store": optional id}

    (the channel comes from the referral cookie, not from here).
    """
    return None


def price_for_order(*, product, distributor_id: int | None, quantity: int):
    """The unit price a buyer pays when attributed to ``distributor_id`` (a sub-store price), or
    None for the product's retail price. The distribution issue fills it; checkout calls it and
    never trusts a price from the client."""
    return None
