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

# What an order counted for before a transition, handed to post_save receivers (the sales rollup).
_SALES_FIELDS = ("status", "paid_at", "paid_amount", "refunded_amount", "distributor_id")

# Time stamps a status sets the first time it is reached.
_STAMPS = {S.PAID: "paid_at", S.COMPLETED: "completed_at"}


class IllegalTransition(Exception):
    def __init__(self, order_no: str, old: str, new: str):
        super().__init__(f"order {order_no}: {old} → {new} is not an allowed transition")
        self.old = old
        self.new = new


def transition_order(
    *,
    order: Order,
    to_status: str,
    cause: str,
    actor=None,
    order_is_locked: bool = False,
    also_set: dict | None = None,
    via: tuple[str, str] | None = None,
) -> Order:
    """Move ``order`` to ``to_status`` or raise IllegalTransition, changing nothing.

    Locks the row and re-reads the status, so two workers racing to move the same order cannot
    both succeed from the same starting state. A caller that already holds the row lock in its
    own transaction (``order_is_locked``, ``order`` being the locked instance) saves the
    re-read; ``also_set`` writes other fields of the same row in the same UPDATE.

    ``via=(status, cause)`` makes two moves in one write (paid → fulfilling → completed when the
    goods are in the database): both are checked against the table and both are recorded.
    """
    if to_status not in S.values:
        raise IllegalTransition(order.order_no, order.status, to_status)
    if order_is_locked:
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("order_is_locked needs the caller's transaction")
        return _write_transition(order, order, to_status, cause, actor, also_set, via)
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        _write_transition(locked, order, to_status, cause, actor, also_set, via)
    return order


def _write_transition(
    locked: Order, order: Order, to_status: str, cause: str, actor, also_set: dict | None, via: tuple[str, str] | None
) -> Order:
    old_status = locked.status
    before = {field: getattr(locked, field) for field in _SALES_FIELDS}
    moves = [(old_status, via[0], via[1]), (via[0], to_status, cause)] if via else [(old_status, to_status, cause)]
    for old, new, _cause in moves:
        if new not in S.values or new not in ALLOWED_TRANSITIONS[old]:
            raise IllegalTransition(locked.order_no, old, new)
    now = timezone.now()
    locked.status = to_status
    locked.status_changed_at = now
    update_fields = ["status", "status_changed_at"]
    for _old, new, _cause in moves:
        stamp = _STAMPS.get(new)
        if stamp and getattr(locked, stamp) is None:
            setattr(locked, stamp, now)
            update_fields.append(stamp)
    for field, value in (also_set or {}).items():
        setattr(locked, field, value)
        update_fields.append(field)
    locked.before_transition = before
    try:
        locked.save(update_fields=update_fields)
    finally:
        locked.before_transition = None
    changes = [
        OrderStatusChange(order=locked, old_status=old, new_status=new, cause=move_cause[:200], actor=actor, created_at=now)
        for old, new, move_cause in moves
    ]
    if len(changes) == 1:
        changes[0].save()
    else:
        OrderStatusChange.objects.bulk_create(changes)
    for field in update_fields:
        setattr(order, field, getattr(locked, field))
    return order
