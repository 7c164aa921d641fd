"""Receivers the distribution network connects to other apps' signals.

The sales rollup follows the orders through Django's own ``post_save`` on ``orders.Order``:
every payment, fulfilment and refund goes through ``orders.services.state.transition_order``,
which saves the order row (status, ``paid_amount`` / ``refunded_amount``) inside the
transaction that changes it — so the rollup commits or rolls back with the order, and the
orders app needs no hook of its own. Writes that bypass ``save()`` (``bulk_create``,
``update()``) are repaired by ``manage.py rebuild_sales_rollup``.
"""

from django.db.models.signals import post_save
from django.utils import timezone

# Fields whose change can change what an order counts for in the rollup.
_SALES_FIELDS = frozenset({"status", "paid_amount", "refunded_amount", "paid_at", "distributor_id", "distributor"})


def _order_saved(sender, instance, created, update_fields=None, raw=False, **kwargs):
    if raw or instance.distributor_id is None or instance.paid_at is None:
        return
    if update_fields is not None:
        changed = _SALES_FIELDS & set(update_fields)
        if not changed:
            return
        if changed == {"status"} and _moved_within_sold(instance):
            return  # paid → fulfilling → completed: the same sale, nothing to recount
    from .services.sales import record_order_sales

    record_order_sales(
        distributor_id=instance.distributor_id,
        day=timezone.localdate(instance.paid_at),
    )


def _moved_within_sold(order) -> bool:
    """A transition between two statuses that both count as sold changes no figure."""
    from .selectors import sold_statuses

    before = order.status_before_save
    sold = sold_statuses()
    return before is not None and before in sold and order.status in sold


def connect() -> None:
    from orders.models import Order

    post_save.connect(_order_saved, sender=Order, dispatch_uid="distribution.sales_rollup")
