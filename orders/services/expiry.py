"""Scheduled housekeeping: expire unpaid orders, ask gateways about payments that went quiet."""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from catalog.services import release_card_key_reservation, release_expired_reservations
from orders.models import Order, OrderStatus, PaymentAttempt, PaymentStatus

from .state import transition_order

__all__ = ["expire_unpaid_orders", "query_pending_payments"]

logger = logging.getLogger(__name__)


def expire_unpaid_orders(*, now=None, limit: int = 1000) -> int:
    """Unpaid past the payment window → EXPIRED, its reserved keys back on sale. A payment that
    still arrives later is honoured (see payments)."""
    now = now or timezone.now()
    expired = 0
    due = Order.objects.filter(status=OrderStatus.PENDING_PAYMENT, expires_at__lt=now).order_by("expires_at")
    for order_id in list(due.values_list("pk", flat=True)[:limit]):
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=order_id)
            if order.status != OrderStatus.PENDING_PAYMENT or order.expires_at >= now:
                continue
            transition_order(
                order=order, to_status=OrderStatus.EXPIRED, cause="payment window passed", order_is_locked=True
            )
            release_card_key_reservation(reference=order.order_no)
            expired += 1
    release_expired_reservations(now=now)
    return expired


def query_pending_payments(*, now=None, quiet_minutes: int = 2, lookback_hours: int = 24, limit: int = 200) -> int:
    """Active query: for payments started a while ago with no final answer, ask the gateway.
    The answer goes through the notification path, so a late "paid" is applied once."""
    from .payments import sync_payment_status

    now = now or timezone.now()
    attempts = (
        PaymentAttempt.objects.filter(
            status=PaymentStatus.PENDING,
            created_at__lt=now - timedelta(minutes=quiet_minutes),
            created_at__gt=now - timedelta(hours=lookback_hours),
            order__status__in=[OrderStatus.PENDING_PAYMENT, OrderStatus.EXPIRED],
        )
        .select_related("order")
        .order_by("created_at")[:limit]
    )
    asked = 0
    for attempt in attempts:
        try:
            sync_payment_status(order=attempt.order)
        except Exception:
            logger.exception("payments.query_failed", extra={"order": attempt.order.order_no})
        asked += 1
    return asked
