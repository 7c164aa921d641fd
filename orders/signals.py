"""Signals the orders app sends; other apps (commissions) connect receivers."""

from django.dispatch import Signal

# Sent after a refund succeeded and committed: kwargs ``order``, ``amount`` (Decimal), ``refund``.
order_refunded = Signal()
# Sent after an order's goods were delivered in full and committed: kwargs ``order``.
order_completed = Signal()
