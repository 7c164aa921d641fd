"""Receivers the distribution network connects to other apps' signals.

The sales rollup follows the orders through Django's own ``post_save`` on ``orders.Order``:
every payment, fulfilment and refund goes through ``orders.services.state.transition_order``,
which saves the order row (status, ``paid_amount`` / ``refunded_amount``) inside the
transaction that changes it — so the rollup commits or rolls back with the order. A
transition hands over what the order was before it (``Order.before_transition``), so the
rollup adds the difference; any other save recounts the seller's day. Writes that bypass
``save()`` (``bulk_create``, ``update()``) are repaired by ``manage.py rebuild_sales_rollup``.

On PostgreSQL a payment's sale does not wait for ``post_save``: ``orders.signals.order_moving``
hands its statements to the move, which sends them in its own message (one round trip less
per payment), and ``post_save`` then leaves that sale alone.
"""

from decimal import Decimal

from django.db.models.signals import post_save
from django.utils import timezone

# Fields whose change can change what an order counts for in the rollup.
_SALES_FIELDS = frozenset({"status", "paid_amount", "refunded_amount", "paid_at", "distributor_id", "distributor"})


def _order_saved(sender, instance, created, update_fields=None, raw=False, **kwargs):
    if raw:
        return
    before = instance.before_transition
    if before is not None:
        _transitioned(instance, before)
        return
    if instance.distributor_id is None or instance.paid_at is None:
        return
    if update_fields is not None and not (_SALES_FIELDS & set(update_fields)):
        return
    from .services.sales import record_order_sales

    # Any other save: recount the seller's day (idempotent, whatever changed).
    record_order_sales(distributor_id=instance.distributor_id, day=timezone.localdate(instance.paid_at))


def _counts_as(status, paid_at, paid_amount, refunded_amount) -> tuple[int, Decimal]:
    from .selectors import sold_statuses

    if paid_at is None or status not in sold_statuses():
        return 0, Decimal("0.00")
    return 1, paid_amount - refunded_amount


_HANDLED = "distribution.sales_rollup"


def _added_sale(order, before: dict) -> tuple[int, Decimal] | None:
    """What a move adds to the seller's day, when it only adds (a payment); None when it
    changes nothing or needs a recount (a refund, a changed seller or payment time)."""
    if before["distributor_id"] != order.distributor_id or (before["paid_at"] and before["paid_at"] != order.paid_at):
        return None
    if order.distributor_id is None or order.paid_at is None:
        return None
    was = _counts_as(before["status"], before["paid_at"], before["paid_amount"], before["refunded_amount"])
    now_orders, now_amount = _counts_as(order.status, order.paid_at, order.paid_amount, order.refunded_amount)
    was_orders, was_amount = was
    if now_orders < was_orders or now_amount < was_amount or (now_orders, now_amount) == was:
        return None
    return now_orders - was_orders, now_amount - was_amount


def _order_moving(sender, instance, before, handled, **kwargs):
    """A payment's sale goes into the rollup in the move's own message (PostgreSQL)."""
    if before is None:
        return None
    added = _added_sale(instance, before)
    if added is None:
        return None
    from .services.sales import add_order_sales_statements

    handled.add(_HANDLED)
    orders, amount = added
    return add_order_sales_statements(
        distributor_id=instance.distributor_id, day=timezone.localdate(instance.paid_at), orders=orders, amount=amount
    )


def _transitioned(order, before: dict) -> None:
    """A state-machine move, made once under the order's row lock: add what it changed to the
    rollup (no recount of the seller's day on every payment); recount when it is not a plain
    addition (a refund; a changed seller or payment time, which the state machine does not do)."""
    from .services.sales import add_order_sales, record_order_sales

    if _HANDLED in order.handled_in_move:
        return  # added by the move's own message (_order_moving)
    added = _added_sale(order, before)
    if added is not None:
        add_order_sales(
            distributor_id=order.distributor_id,
            day=timezone.localdate(order.paid_at),
            orders=added[0],
            amount=added[1],
        )
        return
    if before["distributor_id"] != order.distributor_id or (before["paid_at"] and before["paid_at"] != order.paid_at):
        for distributor_id, paid_at in ((before["distributor_id"], before["paid_at"]), (order.distributor_id, order.paid_at)):
            if distributor_id is not None and paid_at is not None:
                record_order_sales(distributor_id=distributor_id, day=timezone.localdate(paid_at))
        return
    if order.distributor_id is None or order.paid_at is None:
        return
    was_orders, was_amount = _counts_as(before["status"], before["paid_at"], before["paid_amount"], before["refunded_amount"])
    now_orders, now_amount = _counts_as(order.status, order.paid_at, order.paid_amount, order.refunded_amount)
    if now_orders < was_orders or now_amount < was_amount:
        # A refund (rare): a negative delta would also trip the rows' checks.
        record_order_sales(distributor_id=order.distributor_id, day=timezone.localdate(order.paid_at))


def connect() -> None:
    from orders.models import Order
    from orders.signals import order_moving

    post_save.connect(_order_saved, sender=Order, dispatch_uid="distribution.sales_rollup")
    order_moving.connect(_order_moving, sender=Order, dispatch_uid="distribution.sales_rollup_in_move")
