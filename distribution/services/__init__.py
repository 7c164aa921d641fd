"""Writes and hooks of the distribution network, its public face for other apps.

Checkout (orders) calls the two hooks below; the rest is grouped by topic in this package:
``tree`` (join, approve, move, freeze/clear — all under the tree lock), ``pricing`` (grade
cost, sub-store prices, settings), ``referrals`` (links and clicks), ``promotion`` (posters,
copy, the compliance filter).
"""

from .attribution import attribution_for_referral, count_referral_order, count_referral_order_cte
from .pricing import (
    commission_depth,
    cost_price_for,
    get_settings,
    resale_ceiling_for,
    save_sub_store,
    set_commission_depth,
    set_sub_store_price,
    sub_store_unit_price,
)
from .referrals import (
    active_link,
    create_referral_link,
    new_link_code,
    record_referral_click,
)
from .tree import (
    admission_problems,
    approve_distributor,
    change_distributor_status,
    create_invitation,
    create_root_distributor,
    join_network,
    leave_network,
    move_subtree,
    record_deposit_held,
    record_deposit_returned,
    record_first_order,
    register_and_join,
    reject_distributor,
    repair_tree,
    transition_distributor,
    tree_problems,
)
from .tree_lock import lock_tree

__all__ = [
    "active_link",
    "admission_problems",
    "approve_distributor",
    "attribution_for_referral",
    "change_distributor_status",
    "commission_depth",
    "cost_price_for",
    "count_referral_order",
    "create_invitation",
    "create_referral_link",
    "create_root_distributor",
    "get_settings",
    "join_network",
    "leave_network",
    "lock_tree",
    "move_subtree",
    "new_link_code",
    "price_for_order",
    "record_deposit_held",
    "record_deposit_returned",
    "record_first_order",
    "record_referral_click",
    "register_and_join",
    "reject_distributor",
    "repair_tree",
    "resale_ceiling_for",
    "save_sub_store",
    "set_commission_depth",
    "set_sub_store_price",
    "sub_store_unit_price",
    "transition_distributor",
    "tree_problems",
]


def price_for_order(*, product, distributor_id: int | None, quantity: int, distributor=None):
    """The unit price a buyer pays when attributed to ``distributor_id`` (a sub-store price), or
    None for the product's retail price. Checkout calls it and never trusts a price from the
    client; the sub-store price is kept within today's bounds (the distributor's cost and the
    merchant's maximum). ``distributor``: the active distributor already loaded with its grade
    and sub-store (the referral look-up's), which saves reading it again."""
    if distributor_id is None:
        return None
    from ..models import Distributor, DistributorStatus

    if distributor is not None and distributor.pk == distributor_id and distributor.status == DistributorStatus.ACTIVE:
        return sub_store_unit_price(distributor=distributor, product=product)

    distributor = (
        Distributor.objects.select_related("grade", "sub_store")
        .filter(pk=distributor_id, status=DistributorStatus.ACTIVE)
        .first()
    )
    if distributor is None:
        return None
    return sub_store_unit_price(distributor=distributor, product=product)
