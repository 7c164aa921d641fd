"""Risk staff's decision on a held order, and what it does to the order: approved, its
fulfilment resumes (a paid order goes to the fulfilment task); rejected, the rest of its
payment is refunded — outside the decision's transaction, since it calls the gateway — and
the refund reverses the commissions. The case itself is riskcontrol's
(``riskcontrol.services.cases.decide_review_case``), decided first.
"""

from django.utils.translation import gettext as _

from orders.models import Order, OrderStatus
from riskcontrol.models import ReviewCase, ReviewStatus
from riskcontrol.services.cases import decide_review_case

from .enqueue import run_task_now_or_enqueue
from .refunds import refund_order

__all__ = ["refund_rejected_order", "reject_held_order", "release_held_order", "resume_fulfilment"]


def release_held_order(*, order, actor, reason: str = "", request=None) -> ReviewCase:
    """Approve a held order: its fulfilment resumes now if it is paid, or as soon as it is."""
    case, changed = decide_review_case(
        order=order,
        status=ReviewStatus.APPROVED,
        actor=actor,
        reason=reason,
        request=request,
    )
    if changed:
        resume_fulfilment(order=order)
    return case


def resume_fulfilment(*, order) -> bool:
    """Send a paid order to the pipeline's fulfilment task. True when it was sent."""
    current = Order.objects.only("status").get(pk=order.pk)
    if current.status not in (
        OrderStatus.PAID,
        OrderStatus.BACKORDERED,
        OrderStatus.FAILED,
    ):
        return False
    run_task_now_or_enqueue("fulfil_order_task", order_id=order.pk)
    return True


def reject_held_order(*, order, actor, reason: str, request=None) -> ReviewCase:
    """Reject a held order: refund what was paid (commissions are reversed by the refund)."""
    case, _changed = decide_review_case(
        order=order,
        status=ReviewStatus.REJECTED,
        actor=actor,
        reason=reason,
        request=request,
    )
    refund_rejected_order(
        order=order, actor=actor, reason=case.decision_reason, request=request
    )
    return case


def refund_rejected_order(*, order, actor, reason: str, request=None):
    """Refund the rest of a rejected order's payment under a fixed refund number, so running
    it twice (a retry, a late payment) refunds once. None when nothing is left to refund."""
    current = Order.objects.get(pk=order.pk)
    left = current.paid_amount - current.refunded_amount
    if left <= 0:
        return None
    return refund_order(
        order=current,
        amount=left,
        reason=(_("风控审核拒绝：%(reason)s") % {"reason": reason})[:200],
        actor=actor,
        out_refund_no=f"R{current.order_no}-risk",
        request=request,
    )
