"""The checkout hook: who a referral code attributes an order to, and the link's order count.

Checkout stores what ``attribution_for_referral`` returns on the order, so later moves in the
tree never change who earned what (ADR 0007). It is one prepared statement — the link with its
distributor, the merchant's depth and the upline — because it runs on every attributed checkout;
the ORM path below is the same read for the first use, which creates the settings row.
"""

from kamen.db import fetch_rows

from .. import sql as distribution_sql
from ..models import Distributor, DistributorStatus
from .codes import normalize_code
from .pricing import commission_depth
from .referrals import active_link

__all__ = ["attribution_for_referral", "count_referral_order", "count_referral_order_cte"]


def attribution_for_referral(*, code: str) -> dict | None:
    """The attribution snapshot for a referral code, or None when the code is unknown.

    Returns ``{"distributor_id", "chain": [ancestor ids, nearest first], "link": code,
    "sub_store": id or None}`` (the channel comes from the referral cookie, not from here),
    where ``sub_store`` is the distributor's open sub-store whichever of their links the code
    is: a distributor's price is their price, so every order they bring while their store is
    open is a sale of that store, at its prices, paying them its 差价 (docs/adr/0012); with no
    open store it is None and the order sells at retail, commission only. Also
    ``grade``, ``chain_grades`` and ``depth`` for the commission split, and ``seller``:
    the distributor, for pricing (not part of the snapshot; loaded with its grade and
    sub-store only when it has a sub-store, whose prices need them). The chain holds exactly
    the ancestors the commission depth (1–3, never more) can pay: the seller is level 1, so
    depth ``d`` snapshots at most ``d − 1`` ancestors (the split and the risk rules read the
    same people; none of them sees a fourth). An inactive distributor or link attributes
    nothing. Counting the order on the link is ``count_referral_order``, in the order's own
    transaction.
    """
    normalised = normalize_code(code)
    if not normalised:
        return None
    rows = fetch_rows(distribution_sql.ATTRIBUTION, [normalised])
    if not rows:
        return None
    link_code, sub_store_id, distributor_id, grade_id, has_store, depth, chain, chain_grades = rows[0]
    if depth is None:  # the settings row does not exist yet: the portable path creates it
        return _attribution_portable(normalised)
    if has_store:
        seller = Distributor.objects.select_related("grade", "sub_store").get(pk=distributor_id)
    else:
        seller = Distributor(pk=distributor_id, grade_id=grade_id, status=DistributorStatus.ACTIVE)
        Distributor.sub_store.related.set_cached_value(seller, None)  # known: no sub-store
    return _snapshot(link_code, sub_store_id, seller, depth, list(chain), list(chain_grades))


def _attribution_portable(code: str) -> dict | None:
    from ..selectors import ancestors

    link = active_link(code)
    if link is None:
        return None
    depth = commission_depth()
    upline = ancestors(link.distributor, depth=depth - 1)
    store = getattr(link.distributor, "sub_store", None)
    return _snapshot(
        link.code,
        store.pk if store is not None and store.is_open else None,
        link.distributor,
        depth,
        [row.pk for row in upline],
        [row.grade_id for row in upline],
    )


def _snapshot(link_code, sub_store_id, seller, depth, chain, chain_grades) -> dict:
    return {
        "distributor_id": seller.pk,
        "chain": chain,
        "link": link_code,
        "sub_store": sub_store_id,
        # For the commission split (ADR 0007): the grades of the time and the depth in force.
        "grade": seller.grade_id,
        "chain_grades": chain_grades,
        "depth": depth,
        "seller": seller,
    }


def count_referral_order_cte(*, only_with: str) -> str:
    """``count_referral_order`` as the CTE ``counted`` of a caller's statement (checkout's order
    insert): the link ``%(link)s`` counts one more order when the caller's CTE ``only_with``
    has a row."""
    return distribution_sql.count_referral_order_cte(only_with)


def count_referral_order(*, code: str) -> None:
    """One more order placed through the link (paid figures come from the orders themselves).
    Checkout calls it in the order's transaction, so an order refused later counts nothing."""
    fetch_rows(distribution_sql.COUNT_REFERRAL_ORDER, [code])
