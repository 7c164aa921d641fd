"""Signals the orders app sends; other apps (commissions) connect receivers."""

from django.dispatch import Signal

# Sent after a refund succeeded and committed: kwargs ``order``, ``amount`` (Decimal), ``refund``.
order_refunded = Signal()
# Sent after an order's goods were delivered in full and committed: kwargs ``order``.
order_completed = Signal()
# Sent by the state machine on PostgreSQL just before it writes a move, inside the transaction
# and under the order's row lock: kwargs ``instance`` (the order with its new values),
# ``before`` (what it counted for before: status, paid_at, paid_amount, refunded_amount,
# distributor_id) and ``handled`` (a set). A receiver may return statements ``(sql, params)``:
# they are sent in the move's own round trip, right after it (one round trip, not one
# more per receiver). A receiver that does so adds its name to ``handled``; the order's
# ``post_save`` then carries ``handled_in_move`` so the receiver does not write twice.
order_moving = Signal()
