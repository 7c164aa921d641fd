"""The order state machine: one table of allowed moves, one function that makes them."""

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from distribution.services.sales import OrderSale, order_sale_statements, record_order_move
from kamen.db import fetch_rows, fetch_rows_in_one_round_trip, instance_from_row
from orders import sql as orders_sql
from orders.models import Order, OrderStatus

__all__ = ["ALLOWED_TRANSITIONS", "IllegalTransition", "lock_order", "move_locked_order", "transition_order"]

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

_KNOWN = frozenset(S.values)  # (``S.values`` builds a new list on every access)

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
    if to_status not in _KNOWN:
        raise IllegalTransition(order.order_no, order.status, to_status)
    if order_is_locked:
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("order_is_locked needs the caller's transaction")
        return _write_transition(order, order, to_status, cause, actor, also_set, via)
    with transaction.atomic():
        locked = lock_order(pk=order.pk)
        if locked is None:
            raise Order.DoesNotExist(f"order {order.pk} does not exist")
        _write_transition(locked, order, to_status, cause, actor, also_set, via)
    return order


def move_locked_order(
    *,
    order: Order,
    to_status: str,
    cause: str,
    actor=None,
    also_set: dict | None = None,
    via=None,
    then=(),
    result=None,
) -> list[tuple]:
    """``transition_order(order_is_locked=True)`` that sends more statements of the caller's
    transaction, as ``(sql, params)``, in the move's own round trip (one round
    trip instead of several): ``then`` right after the move, then the payment's sale for the
    distributors' sales rollup (whose rows every order of a network shares: locked last), then
    ``result``, a statement whose rows are returned."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("move_locked_order needs the caller's transaction")
    if to_status not in _KNOWN:
        raise IllegalTransition(order.order_no, order.status, to_status)
    rows: list[tuple] = []
    _write_transition(order, order, to_status, cause, actor, also_set, via, then=then, rows=rows, last=result)
    return rows


def _write_transition(
    locked: Order,
    order: Order,
    to_status: str,
    cause: str,
    actor,
    also_set: dict | None,
    via: tuple[str, str] | None,
    *,
    then=(),
    rows: list | None = None,
    last=None,
) -> Order:
    old_status = locked.status
    before = _sale_of(locked)
    moves = [(old_status, via[0], via[1]), (via[0], to_status, cause)] if via else [(old_status, to_status, cause)]
    for old, new, _cause in moves:
        if new not in _KNOWN or new not in ALLOWED_TRANSITIONS[old]:
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
    after = _sale_of(locked)
    # A payment's sale goes into the distributors' rollup in the move's own round trip.
    sale = order_sale_statements(before=before, after=after)
    found = _save_moves_in_one_statement(locked, update_fields, moves, actor, now, then, sale, last)
    if rows is not None:
        rows.extend(found)
    if not sale:
        record_order_move(before=before, after=after)  # not a plain sale: a refund recounts
    for field in update_fields:
        setattr(order, field, getattr(locked, field))
    return order


def _sale_of(order: Order) -> OrderSale:
    """What ``order`` counts for in the distributors' sales rollup."""
    return OrderSale(
        distributor_id=order.distributor_id,
        status=order.status,
        paid_at=order.paid_at,
        paid_amount=order.paid_amount,
        refunded_amount=order.refunded_amount,
    )


def _save_moves_in_one_statement(
    locked: Order, update_fields: list[str], moves, actor, now, then=(), along=(), last=None
) -> list[tuple]:
    """The order's new values and its status-change rows in one statement, with the caller's
    ``then`` statements and ``along`` (the payment's sale) in the same round trip."""
    names = tuple(dict.fromkeys(update_fields))
    sql, fields = orders_sql.moves(names)
    wrapper = connections[DEFAULT_DB_ALIAS]  # not the ``connection`` proxy: a look-up per field
    values = [field.get_db_prep_save(getattr(locked, field.attname), wrapper) for field in fields]
    values += [
        locked.pk,
        getattr(actor, "pk", None),
        now,
        [old for old, _new, _cause in moves],
        [new for _old, new, _cause in moves],
        [cause[:200] for _old, _new, cause in moves],
    ]
    if then or along or last is not None:
        # The caller's statements, the sale (hot rows: locked last), the result-bearing one.
        rows = fetch_rows_in_one_round_trip([(sql, values), *then, *along, *([last] if last is not None else [])])
    else:
        rows = fetch_rows(sql, values)
    return rows


def lock_order(*, pk: int | None = None, order_no: str | None = None, with_product: bool = False) -> Order | None:
    """The order row locked for the caller's transaction (by id or order number), its product
    loaded with it when asked; None when there is no such order. Locks the order only, never
    the product (a hot product's orders are written side by side)."""
    by, value = ("id", pk) if pk is not None else ("order_no", order_no)
    rows = fetch_rows(orders_sql.lock_order(by, with_product), [value])
    if not rows:
        return None
    order = instance_from_row(Order, rows[0])
    if with_product:
        from catalog.models import Product

        Order.product.field.set_cached_value(
            order, instance_from_row(Product, rows[0], len(Order._meta.concrete_fields))
        )
    return order
