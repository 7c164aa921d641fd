"""The sales rollup: each distributor's own sales per local day, and each team's all-time total.

Why: the portal's figures (today, this month, the 30-day chart, team GMV) used to sum every
order of a subtree on every render — ~32k orders, ~170 ms, for a large team. The rollup turns
the daily figures into an aggregate over (distributor, day) rows and the team GMV into one row.

How it stays right:

- The order state machine (``orders.services.state``) calls ``record_order_move`` (or sends
  ``order_sale_statements`` in its own message) inside the transaction that pays, fulfils or
  refunds an order, handing over what the order counted for before and after (``OrderSale``).
  A refund recounts with ``record_order_sales``, which locks the
  seller's row for that day and recomputes it from the orders — so it is safe to call twice and
  cannot drift by a missed delta — then adds the difference to the team totals of the seller
  and everyone above.
- It holds the tree lock in shared mode, so a staff move (which takes it exclusively, and moves
  the subtree's totals from the old upline to the new one) never interleaves with it.
- ``rebuild_sales_rollup`` recomputes both tables from the orders: the repair.

Team-total rows are locked by primary key order, so two payments in the same upline wait for
each other instead of deadlocking.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from kamen.db import fetch_rows_in_one_round_trip

from .. import sql as distribution_sql
from ..models import DistributorDailySales, DistributorTeamTotals

__all__ = [
    "OrderSale",
    "add_order_sales",
    "order_sale_statements",
    "record_order_move",
    "move_team_totals",
    "rebuild_sales_rollup",
    "record_order_sales",
]

ZERO = Decimal("0.00")


def _sold_statuses() -> list[str]:
    from ..selectors import sold_statuses

    return [str(status) for status in sold_statuses()]


def _day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))
    end = timezone.make_aware(datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min))
    return start, end


def _add_to_team_totals(cursor, ids: list[int], orders: int, amount: Decimal) -> None:
    """Add (orders, amount) to the team totals of ``ids``, creating missing rows, locking the
    rows in primary-key order first."""
    if not ids or (orders == 0 and amount == ZERO):
        return
    cursor.execute(distribution_sql.MAKE_TEAM_TOTALS, [ids])
    cursor.execute(distribution_sql.LOCK_TEAM_TOTALS, [ids])
    cursor.execute(distribution_sql.ADD_TO_TEAM_TOTALS, [orders, amount, ids])


def record_order_sales(*, distributor_id: int, day: datetime.date) -> None:
    """Recompute ``distributor_id``'s own sales on local ``day`` from the orders and carry the
    change into the team totals of its upline. Idempotent; call it inside the transaction that
    changed the order (its status, paid or refunded amount).

    Refunds and saves that are not state transitions come here (a payment adds its sale with
    ``add_order_sales``). The tree lock, the day's row lock (the upsert), the
    recount, then the day and the upline's totals in one statement; no savepoint.
    """
    start, end = _day_bounds(day)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(distribution_sql.TREE_LOCK_SHARED_AND_EXISTS, [distributor_id])
        if not cursor.fetchone()[1]:
            return  # an attribution to a distributor that no longer exists
        # ON CONFLICT DO UPDATE locks the day's row (or creates it) and returns what it holds.
        cursor.execute(distribution_sql.LOCK_DAY, [distributor_id, day])
        row_id, old_orders, old_amount = cursor.fetchone()
        # A new statement, so a new snapshot: it sees every order committed before the lock.
        cursor.execute(distribution_sql.COUNT_DAY, [distributor_id, start, end, _sold_statuses()])
        orders, amount = cursor.fetchone()
        if orders == old_orders and amount == old_amount:
            return
        cursor.execute(
            distribution_sql.SET_DAY_AND_ADD_TO_TEAM_TOTALS,
            {
                "seller": distributor_id,
                "orders": orders,
                "amount": amount,
                "row": row_id,
                "delta_orders": orders - old_orders,
                "delta_amount": amount - old_amount,
            },
        )


def add_order_sales(*, distributor_id: int, day: datetime.date, orders: int, amount: Decimal) -> None:
    """Add one order's sale (``orders`` 1 or 0, ``amount`` ≥ 0) to ``distributor_id``'s sales on
    local ``day`` and to the team totals of its upline (refunds recount instead). Not
    idempotent: call it exactly once per change, inside the transaction that makes it under
    the order's row lock (a state transition does). Two statements in one message: the tree
    lock, then the day's row and the upline's totals, rows locked in primary-key order."""
    if orders == 0 and amount == ZERO:
        return
    if orders < 0 or amount < ZERO:
        raise ValueError("add_order_sales adds sales; a refund recounts with record_order_sales")
    with transaction.atomic(savepoint=False):
        fetch_rows_in_one_round_trip(
            add_order_sales_statements(distributor_id=distributor_id, day=day, orders=orders, amount=amount)
        )


def add_order_sales_statements(*, distributor_id: int, day: datetime.date, orders: int, amount: Decimal) -> list:
    """``add_order_sales`` as statements ``(sql, params)`` for one message:
    the tree lock a statement of its own (the next one's snapshot then sees any move that held
    it), then the day's row and the upline's totals. The order's move sends them in its own
    message (``order_sale_statements``)."""
    return [
        (distribution_sql.TREE_LOCK_SHARED, []),
        (
            distribution_sql.ADD_SALE,
            {"seller": distributor_id, "day": day, "delta_orders": orders, "delta_amount": amount},
        ),
    ]


@dataclass(frozen=True)
class OrderSale:
    """What an order counts for in the rollup, before or after a move of the state machine."""

    distributor_id: int | None
    status: str
    paid_at: datetime.datetime | None
    paid_amount: Decimal
    refunded_amount: Decimal

    def counts_as(self) -> tuple[int, Decimal]:
        from ..selectors import sold_statuses

        if self.paid_at is None or self.status not in sold_statuses():
            return 0, ZERO
        return 1, self.paid_amount - self.refunded_amount


def _added_sale(before: OrderSale, after: OrderSale) -> tuple[int, Decimal] | None:
    """What a move adds to the seller's day, when it only adds (a payment); None when it
    changes nothing or needs a recount (a refund, a changed seller or payment time)."""
    if before.distributor_id != after.distributor_id or (before.paid_at and before.paid_at != after.paid_at):
        return None
    if after.distributor_id is None or after.paid_at is None:
        return None
    was = before.counts_as()
    now_orders, now_amount = after.counts_as()
    was_orders, was_amount = was
    if now_orders < was_orders or now_amount < was_amount or (now_orders, now_amount) == was:
        return None
    return now_orders - was_orders, now_amount - was_amount


def order_sale_statements(*, before: OrderSale, after: OrderSale) -> list:
    """A payment's sale as statements for the move's own message (one round trip
    less per payment); empty when the move is not a plain addition (``record_order_move``
    then does what it needs)."""
    added = _added_sale(before, after)
    if added is None:
        return []
    orders, amount = added
    return add_order_sales_statements(
        distributor_id=after.distributor_id, day=timezone.localdate(after.paid_at), orders=orders, amount=amount
    )


def record_order_move(*, before: OrderSale, after: OrderSale) -> None:
    """A state-machine move, made once under the order's row lock: add what it changed to the
    rollup (no recount of the seller's day on every payment); recount when it is not a plain
    addition (a refund; a changed seller or payment time, which the state machine does not do)."""
    added = _added_sale(before, after)
    if added is not None:
        add_order_sales(
            distributor_id=after.distributor_id,
            day=timezone.localdate(after.paid_at),
            orders=added[0],
            amount=added[1],
        )
        return
    if before.distributor_id != after.distributor_id or (before.paid_at and before.paid_at != after.paid_at):
        for distributor_id, paid_at in ((before.distributor_id, before.paid_at), (after.distributor_id, after.paid_at)):
            if distributor_id is not None and paid_at is not None:
                record_order_sales(distributor_id=distributor_id, day=timezone.localdate(paid_at))
        return
    if after.distributor_id is None or after.paid_at is None:
        return
    was_orders, was_amount = before.counts_as()
    now_orders, now_amount = after.counts_as()
    if now_orders < was_orders or now_amount < was_amount:
        # A refund (rare): a negative delta would also trip the rows' checks.
        record_order_sales(distributor_id=after.distributor_id, day=timezone.localdate(after.paid_at))


def move_team_totals(*, distributor_id: int, old_upline: list[int], new_upline: list[int]) -> None:
    """A subtree moved (the caller holds the tree lock): its team total leaves the ancestors
    it had and joins the ones it has now."""
    totals = DistributorTeamTotals.objects.filter(distributor_id=distributor_id).first()
    if totals is None:
        return
    with connection.cursor() as cursor:
        _add_to_team_totals(cursor, old_upline, -totals.orders, -totals.amount)
        _add_to_team_totals(cursor, new_upline, totals.orders, totals.amount)


def rebuild_sales_rollup() -> dict:
    """Recompute the daily rollup and the team totals from the orders (the repair). Takes the
    tree lock, so payments and moves wait until it commits."""
    from .tree_lock import lock_tree

    with transaction.atomic(), connection.cursor() as cursor:
        lock_tree()  # exclusive: waits for every payment holding it in shared mode
        cursor.execute(distribution_sql.DELETE_DAILY)
        cursor.execute(distribution_sql.REBUILD_DAILY, [str(timezone.get_current_timezone()), _sold_statuses()])
        days = cursor.rowcount
        cursor.execute(distribution_sql.DELETE_TOTALS)
        cursor.execute(distribution_sql.REBUILD_TOTALS)
        teams = cursor.rowcount
    return {"daily_rows": days, "team_rows": teams}


def daily_sales_rows() -> list[tuple]:
    """(distributor, day, orders, amount) of every non-empty rollup row, for checks."""
    return sorted(
        DistributorDailySales.objects.exclude(orders=0, amount=ZERO).values_list(
            "distributor_id", "day", "orders", "amount"
        )
    )
