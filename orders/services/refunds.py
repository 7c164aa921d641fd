"""Refunds: full or partial, through the gateway that took the money, never more than was paid.

Three steps so no transaction is held across the gateway call: (1) under the order lock, check
the refundable amount (paid − refunded − refunds in flight) and record a pending Refund with its
``out_refund_no`` (the idempotency key: the same number twice is the same refund); (2) ask the
gateway; (3) under the lock again, settle the refund, the order's refunded amount and status,
the card keys; after commit, reverse the commissions (``commissions.services.reverse_commissions``,
retried by a task if it fails, so a refund never fails because of the books) and publish
``order_refunded``. The database CheckConstraint
``order_refund_within_paid`` is the backstop.
"""

import logging
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import CardKey, CardKeyStatus
from catalog.services import release_card_key_reservation
from commissions.services import reverse_commissions
from distribution.services.four_eyes import require_not_own_order
from kamen.audit import record_audit
from kamen.parsing import parse_decimal
from orders.gateways import GatewayError, get_gateway
from orders.models import (
    DeliveryKind,
    Order,
    OrderDelivery,
    OrderStatus,
    Refund,
    RefundStatus,
)

from .books import book_refunded_order
from .state import ALLOWED_TRANSITIONS, transition_order

__all__ = ["RefundFailed", "refund_order", "reverse_order_commissions"]

logger = logging.getLogger(__name__)
_OFFLINE_GATEWAYS = {"manual", "wallet", "prepaid", ""}  # prepaid: the open API (orders.api)


class RefundFailed(Exception):
    def __init__(self, refund: Refund, reason: str):
        super().__init__(reason)
        self.refund = refund


def _amount(raw) -> Decimal:
    try:
        value = parse_decimal(raw)
    except (InvalidOperation, ValueError):
        raise ValidationError({"amount": [_("退款金额格式不正确")]}) from None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValidationError({"amount": [_("退款金额须大于 0 且精确到分")]})
    return value


def _next_refund_no(order: Order) -> str:
    return f"R{order.order_no}-{Refund.objects.filter(order=order).count() + 1}"


def refund_order(
    *,
    order: Order,
    amount,
    reason: str,
    actor=None,
    restock: bool = False,
    out_refund_no: str | None = None,
    request=None,
) -> Refund:
    """Refund ``amount`` of ``order``. Raises ValidationError (nothing changed) for a bad amount,
    an amount above what is left to refund, or an order that cannot be refunded now.

    Delivered card keys are voided (the buyer has seen them; a key is delivered to at most one
    order, ever). Keys still reserved for the order go back on sale; ``restock`` additionally
    returns keys that were sold to the order but never delivered.
    """
    require_not_own_order(actor=actor, order=order, what=_("这笔退款"))
    amount = _amount(amount)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("请填写退款原因")]})
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if out_refund_no:
            earlier = Refund.objects.filter(out_refund_no=out_refund_no).first()
            if earlier is not None:
                if earlier.order_id != locked.pk:
                    raise ValidationError({"out_refund_no": [_("退款单号已被其他订单使用")]})
                return earlier
        in_flight = Refund.objects.filter(order=locked, status=RefundStatus.PENDING).aggregate(total=Sum("amount"))[
            "total"
        ] or Decimal("0")
        refundable = locked.paid_amount - locked.refunded_amount - in_flight
        if locked.paid_amount <= 0:
            raise ValidationError({"amount": [_("该订单尚未支付，无需退款")]})
        if amount > refundable:
            raise ValidationError(
                {"amount": [_("退款金额超过可退金额 ¥%(refundable)s") % {"refundable": max(refundable, Decimal("0"))}]}
            )
        is_full = locked.refunded_amount + amount == locked.paid_amount
        target = OrderStatus.REFUNDED if is_full else OrderStatus.PARTIALLY_REFUNDED
        if target not in ALLOWED_TRANSITIONS[locked.status]:
            raise ValidationError(
                _("订单状态为“%(status)s”，不能%(kind)s")
                % {"status": locked.get_status_display(), "kind": _("全额退款") if is_full else _("部分退款")}
            )
        refund = Refund.objects.create(
            order=locked,
            amount=amount,
            out_refund_no=out_refund_no or _next_refund_no(locked),
            gateway=locked.payment_gateway,
            reason=reason[:200],
            restock=restock,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
        )
        if actor is not None and getattr(actor, "is_authenticated", False):
            record_audit(
                actor=actor,
                action="orders.refund_requested",
                target=locked,
                changes={"amount": str(amount), "reason": reason[:200], "out_refund_no": refund.out_refund_no},
                request=request,
            )
    # The gateway call, outside any transaction.
    gateway_refund_no = ""
    if refund.gateway not in _OFFLINE_GATEWAYS:
        try:
            result = get_gateway(refund.gateway).refund(
                out_trade_no=locked.order_no,
                out_refund_no=refund.out_refund_no,
                refund_amount=amount,
                total_amount=locked.paid_amount,
                reason=reason[:80],
            )
            gateway_refund_no = result.gateway_refund_no
        except GatewayError as error:
            Refund.objects.filter(pk=refund.pk).update(
                status=RefundStatus.FAILED, failure_reason=str(error)[:300], finished_at=timezone.now()
            )
            refund.refresh_from_db()
            logger.warning("refunds.gateway_failed", extra={"order": locked.order_no})
            raise RefundFailed(refund, str(error)) from None
    return _settle(refund, gateway_refund_no, actor)


def _settle(refund: Refund, gateway_refund_no: str, actor) -> Refund:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=refund.order_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status != RefundStatus.PENDING:
            return refund
        refunded = order.refunded_amount + refund.amount
        refund.status = RefundStatus.SUCCEEDED
        refund.gateway_refund_no = gateway_refund_no[:64]
        refund.finished_at = timezone.now()
        refund.save(update_fields=["status", "gateway_refund_no", "finished_at"])
        is_full = refunded == order.paid_amount
        transition_order(
            order=order,
            to_status=OrderStatus.REFUNDED if is_full else OrderStatus.PARTIALLY_REFUNDED,
            cause=f"refund {refund.out_refund_no}: {refund.reason}"[:200],
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            order_is_locked=True,
            also_set={"refunded_amount": refunded},
        )
        if is_full:
            _settle_card_keys(order, restock=refund.restock)
        # The books (docs/adr/0020): commissions reversed and the order's lines in line with
        # its refunded total, in this transaction (the after-commit reversal then finds nothing).
        book_refunded_order(order)
        transaction.on_commit(lambda: _after_refund(order, refund))
    return refund


def _after_refund(order: Order, refund: Refund) -> None:
    from orders.signals import order_refunded

    reverse_order_commissions(order=order)
    order_refunded.send(sender=Order, order=order, amount=refund.amount, refund=refund)


def reverse_order_commissions(*, order: Order) -> None:
    """After a refund's commit, in a transaction of its own: the order's commissions follow
    its refunded total. A failure is logged and handed to ``reverse_commissions_task``."""
    try:
        reverse_commissions(order=order)
    except Exception:
        logger.exception("commissions.reversal_failed", extra={"order": order.order_no})
        from .enqueue import run_task_now_or_enqueue

        run_task_now_or_enqueue("reverse_commissions_task", order_id=order.pk)


def _settle_card_keys(order: Order, *, restock: bool) -> None:
    release_card_key_reservation(reference=order.order_no)
    delivered_ids = OrderDelivery.objects.filter(order=order, kind=DeliveryKind.CARD_KEY).values("card_key_id")
    now = timezone.now()
    OrderDelivery.objects.filter(order=order).update(is_voided=True)
    CardKey.objects.filter(pk__in=delivered_ids, status=CardKeyStatus.SOLD).update(
        status=CardKeyStatus.VOID, voided_at=now
    )
    undelivered = CardKey.objects.filter(sold_to=order.order_no, status=CardKeyStatus.SOLD).exclude(
        pk__in=delivered_ids
    )
    if restock:
        undelivered.update(status=CardKeyStatus.AVAILABLE, sold_to="", sold_at=None)
    else:
        undelivered.update(status=CardKeyStatus.VOID, voided_at=now)
