"""The order state machine: one table of allowed moves, one function that makes them."""

from django.db import transaction
from django.utils import timezone

from orders.models import Order, OrderStatus, OrderStatusChange

__all__ = ["ALLOWED_TRANSITIONS", "IllegalTransition", "transition_order"]

S = OrderStatus
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.EXPIRED}),
    # A payment that arrives after expiry is still honoured: fulfilled if stock allows, else refunded.
    S.EXPIRED: frozenset({S.PAID}),
    S.PAID: frozenset({S.FULFILLING, S.REFUNDED}),
    S.FULFILLING: frozenset({S.COMPLETED, S.PARTIALLY_FULFILLED, S.FAILED, S.BACKORDERED}),
    S.BACKORDERED: frozenset({S.FULFILLING, S.REFUNDED}),
    S.FAILED: frozenset({S.FULFILLING, S.REFUNDED}),
    S.PARTIALLY_FULFILLED: frozenset({S.FULFILLING, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.COMPLETED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
}

# Time stamps a status sets the first time it is reached.
_STAMPS = {S.PAID: "paid_at", S.COMPLETED: "completed_at"}


class IllegalTransition(Exception):
    def __init__(self, order_no: str, old: str, new: str):
        super().__init__(f"order {order_no}: {old} → {new} is not an allowed transition")
        self.old = old
        self.new = new


def transition_order(
    *, order: Order, to_status: str, cause: str, actor=None, order_is_locked: bool = False, also_set: dict | None = None
) -> Order:
    """Move ``order`` to ``to_status`` or raise IllegalTransition, changing nothing.

    Locks the row and re-reads the status, so two workers racing to move the same order cannot
    both succeed from the same starting state. A caller that already holds the row lock in its
    own transaction (``order_is_locked``, ``order`` being the locked instance) saves the
    re-read; ``also_set`` writes other fields of the same row in the same UPDATE.
    """
    if to_status not in S.values:
        raise IllegalTransition(order.order_no, order.status, to_status)
    if order_is_locked:
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("order_is_locked needs the caller's transaction")
        return _write_transition(order, order, to_status, cause, actor, also_set)
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        _write_transition(locked, order, to_status, cause, actor, also_set)
    return order


def _write_transition(locked: Order, order: Order, to_status: str, cause: str, actor, also_set: dict | None) -> Order:
    old_status = locked.status
    if to_status not in ALLOWED_TRANSITIONS[old_status]:
        raise IllegalTransition(locked.order_no, old_status, to_status)
    now = timezone.now()
    locked.status = to_status
    locked.status_changed_at = now
    update_fields = ["status", "status_changed_at"]
    stamp = _STAMPS.get(to_status)
    if stamp and getattr(locked, stamp) is None:
        setattr(locked, stamp, now)
        update_fields.append(stamp)
    for field, value in (also_set or {}).items():
        setattr(locked, field, value)
        update_fields.append(field)
    locked.save(update_fields=update_fields)
    OrderStatusChange.objects.create(order=locked, old_status=old_status, new_status=to_status, cause=cause[:200], actor=actor)
    for field in update_fields:
        setattr(order, field, getattr(locked, field))
    return order
