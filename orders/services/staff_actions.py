"""What staff may do to an order in the console, by its state: one table that decides both
what the console offers and what the services accept, so a link is never shown for an action
that would be refused, and an action that cannot apply is refused with a message instead of
reporting a success that did nothing."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from kamen.audit import record_audit
from orders.models import Order, OrderStatus

from .state import ALLOWED_TRANSITIONS

__all__ = [
    "CONFIRM_PAYMENT",
    "REDRIVE",
    "REFUND",
    "STAFF_ACTIONS",
    "redrive_fulfilment",
    "require_staff_action",
    "staff_actions_for",
]

CONFIRM_PAYMENT, REFUND, REDRIVE = "confirm_payment", "refund", "redrive"
STAFF_ACTIONS = (CONFIRM_PAYMENT, REFUND, REDRIVE)
# 补单 only for an order the gateway never confirmed; 重新发货 only while delivery is owed.
_UNPAID = (OrderStatus.PENDING_PAYMENT, OrderStatus.EXPIRED)
_REDRIVABLE = (OrderStatus.PAID, OrderStatus.FULFILLING, OrderStatus.BACKORDERED, OrderStatus.FAILED)


def _is_held_for_review(order: Order) -> bool:
    if (order.attribution or {}).get("risk") != "review":
        return False  # no query for the ordinary order
    from riskcontrol.selectors import is_fulfilment_held

    return is_fulfilment_held(order=order)


def _refusal(order: Order, action: str) -> str:
    """Why ``action`` cannot apply to ``order`` now ("" when it can)."""
    status = order.get_status_display()
    if action == CONFIRM_PAYMENT:
        if order.status not in _UNPAID or order.paid_at is not None:
            return _("订单 %(order_no)s 当前状态为“%(status)s”，已收到付款，无需人工补单") % {
                "order_no": order.order_no,
                "status": status,
            }
    elif action == REFUND:
        refundable = order.paid_amount - order.refunded_amount
        if refundable <= 0 or OrderStatus.REFUNDED not in ALLOWED_TRANSITIONS[order.status]:
            return _("订单 %(order_no)s 当前状态为“%(status)s”，没有可以退款的金额") % {
                "order_no": order.order_no,
                "status": status,
            }
    elif action == REDRIVE:
        if order.status not in _REDRIVABLE:
            return _("订单 %(order_no)s 当前状态为“%(status)s”，无需重新发货") % {
                "order_no": order.order_no,
                "status": status,
            }
        if _is_held_for_review(order):
            return _("订单 %(order_no)s 正在风控审核，审核通过后会自动发货") % {"order_no": order.order_no}
    else:
        raise ValueError(f"unknown staff action {action!r}")
    return ""


def staff_actions_for(*, order: Order) -> frozenset[str]:
    """The console actions that apply to ``order`` in its current state."""
    return frozenset(action for action in STAFF_ACTIONS if not _refusal(order, action))


def require_staff_action(*, order: Order, action: str) -> None:
    """Raise ValidationError (changing nothing) when ``action`` cannot apply to ``order``."""
    reason = _refusal(order, action)
    if reason:
        raise ValidationError(reason, code="not_applicable")


def redrive_fulfilment(*, order: Order, actor, request=None) -> None:
    """Staff 重新发货: run the fulfilment task again (it never delivers twice). Refused with a
    message for an order that owes no delivery or waits for risk review."""
    from .enqueue import run_task_now_or_enqueue

    current = Order.objects.get(pk=order.pk)
    require_staff_action(order=current, action=REDRIVE)
    record_audit(actor=actor, action="orders.fulfilment_redriven", target=current, request=request)
    run_task_now_or_enqueue("fulfil_order_task", order_id=current.pk)
