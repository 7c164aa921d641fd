"""Order pipeline tasks (Celery). Thin: ids in, one service call, safe to run twice."""

import hashlib
import logging
from decimal import Decimal

from celery import shared_task
from django.conf import settings

from kamen.periodic import exclusive_periodic_job
from kamen.worker_health import register_worker_loop

logger = logging.getLogger(__name__)

RETRY = {"acks_late": True, "max_retries": 5, "retry_backoff": True, "retry_backoff_max": 300}
# On the fulfilment queue a message may be held at most its countdown plus its time limit:
# less than that queue's visibility timeout (CELERY_FULFILMENT_TRANSPORT_OPTIONS, 180 s), or
# Redis would hand it to a second worker while the first still holds it (ADR 0013).
FULFIL_LIMITS = {"soft_time_limit": 50, "time_limit": 60}
FULFIL_MAX_COUNTDOWN = 60


@shared_task(bind=True, **RETRY, **FULFIL_LIMITS)
def fulfil_order_task(self, order_id: int):
    from orders.services import FulfilmentPending, fulfil_order

    try:
        fulfil_order(order_id=order_id)
    except FulfilmentPending as pending:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            return  # in-process: the sweeper (or the next page load) re-drives it
        countdown = min(2**self.request.retries * 5, FULFIL_MAX_COUNTDOWN)
        raise self.retry(exc=pending, countdown=countdown) from None


def _recover_paid_orders() -> None:
    from orders.services import recover_paid_orders

    recover_paid_orders()


# Every Celery worker drives paid orders whose message went missing, from the database, without
# the broker or beat (ADR 0013).
register_worker_loop(
    name="orders.recover_paid",
    interval_seconds=settings.ORDER_RECOVERY_INTERVAL_SECONDS,
    func=_recover_paid_orders,
)


def _redeliver_sandbox_notifications() -> None:
    from orders.gateways.sandbox import redeliver_due_sandbox_notifications

    redeliver_due_sandbox_notifications()


# The sandbox gateway's retries, kept in its own table: a lost message must not leave a paid
# sandbox payment unnotified until the 3-minute payment query.
register_worker_loop(
    name="orders.sandbox_redeliver",
    interval_seconds=settings.ORDER_RECOVERY_INTERVAL_SECONDS,
    func=_redeliver_sandbox_notifications,
)


@shared_task(bind=True, **RETRY)
def send_delivery_email_task(self, order_id: int):
    """A delivery e-mail whose first send (right after the delivery commit) failed: claim it
    again and send, retrying with backoff. Claiming makes a redelivered task send nothing."""
    from orders.models import Order
    from orders.services import send_delivery_email

    try:
        send_delivery_email(order=Order.objects.get(pk=order_id))
    except Exception as error:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            logger.exception("orders.delivery_email_failed", extra={"order_id": order_id})
            return
        raise self.retry(exc=error, countdown=min(2**self.request.retries * 30, 600)) from None


@shared_task(**RETRY, autoretry_for=(Exception,))
def fulfil_backorders_task(product_id: int):
    from catalog.models import Product
    from orders.services import fulfil_backorders

    fulfil_backorders(product=Product.objects.get(pk=product_id))


@shared_task(acks_late=True)
@exclusive_periodic_job
def run_risk_scans_task():
    """The network's risk scans (findings are once per day, so safe to run twice)."""
    from .services.risk_scans import run_scans

    return run_scans()


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def reverse_commissions_task(order_id: int) -> int:
    """A refund's commission reversal that failed right after the refund's commit."""
    from commissions.services import reverse_commissions
    from orders.models import Order

    return len(reverse_commissions(order=Order.objects.get(pk=order_id)))


@shared_task(bind=True, **RETRY)
def refund_order_task(self, order_id: int, reason: str, amount: str):
    """Automatic refunds (late payment without stock, failure policy). ``out_refund_no`` is
    derived from the reason so a retried task refunds once."""
    from orders.models import Order
    from orders.services import RefundFailed, refund_order

    order = Order.objects.get(pk=order_id)
    key = f"R{order.order_no}-auto-{hashlib.sha256(reason.encode()).hexdigest()[:6]}"
    try:
        refund_order(order=order, amount=Decimal(amount), reason=reason, out_refund_no=key)
    except RefundFailed as error:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            return
        raise self.retry(exc=error, countdown=min(2**self.request.retries * 30, 600)) from None


@shared_task(bind=True, acks_late=True, max_retries=settings.SANDBOX_NOTIFY_MAX_ATTEMPTS)
def deliver_sandbox_notification_task(self, notification_id: int):
    """The sandbox gateway retrying its notification with backoff until answered ``success``."""
    from orders.gateways.sandbox import deliver_sandbox_notification

    if deliver_sandbox_notification(notification_id=notification_id):
        return
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return  # in-process: the order page's payment query covers a lost notification
    from orders.gateways.sandbox import sandbox_retry_delay

    raise self.retry(countdown=sandbox_retry_delay(self.request.retries + 1))


@shared_task(acks_late=True)
@exclusive_periodic_job
def expire_unpaid_orders_task():
    from orders.services import expire_unpaid_orders

    return expire_unpaid_orders()


@shared_task(acks_late=True)
@exclusive_periodic_job
def sweep_stalled_orders_task():
    from orders.services import sweep_stalled_orders

    return sweep_stalled_orders()


@shared_task(acks_late=True)
@exclusive_periodic_job
def query_pending_payments_task():
    from orders.services import query_pending_payments

    return query_pending_payments()


@shared_task(acks_late=True)
@exclusive_periodic_job
def reconcile_statements_task():
    """Each morning: yesterday's statement of every gateway, matched (docs/adr/0020)."""
    from orders.services.reconciliation import reconcile_yesterday

    return [statement.pk for statement in reconcile_yesterday()]
