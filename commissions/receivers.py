"""Receivers for the orders app's signals (sent after commit).

``order_completed`` splits the order's commissions. At merge the lead moves
``split_commissions(order=order)`` into the delivery transaction itself (fulfilment), as the
architecture asks; this receiver then finds the rows already written and does nothing — the
split is idempotent, so both paths together pay once.

``order_refunded`` reverses commissions in line with the order's refunded total.

Both run in their own transaction after the order's commit; an error is logged and the Celery
task retries, so a refund never fails because of the books.
"""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def on_order_completed(sender, order, commissions_split=False, **kwargs):
    from .services import split_commissions
    from .tasks import split_commissions_task

    if commissions_split:
        # Fulfilment split the order in its delivery transaction, which committed: the rows
        # exist (or the order earns nothing), so a second look would only cost round trips.
        return
    try:
        split_commissions(order=order)
    except Exception:
        logger.exception(
            "commissions.split_failed",
            extra={"order": getattr(order, "order_no", None)},
        )
        transaction.on_commit(lambda: split_commissions_task.delay(order.pk), robust=True)


def on_order_refunded(sender, order, amount=None, refund=None, **kwargs):
    from .services import reverse_commissions
    from .tasks import reverse_commissions_task

    try:
        reverse_commissions(order=order)
    except Exception:
        logger.exception(
            "commissions.reversal_failed",
            extra={"order": getattr(order, "order_no", None)},
        )
        transaction.on_commit(lambda: reverse_commissions_task.delay(order.pk), robust=True)


def connect() -> bool:
    """Connect to ``orders.signals`` if the orders app defines them (it may not yet)."""
    try:
        from orders import signals
    except ImportError:
        return False
    connected = False
    if hasattr(signals, "order_completed"):
        signals.order_completed.connect(
            on_order_completed, dispatch_uid="commissions.order_completed"
        )
        connected = True
    if hasattr(signals, "order_refunded"):
        signals.order_refunded.connect(
            on_order_refunded, dispatch_uid="commissions.order_refunded"
        )
        connected = True
    return connected
