"""The review queue: orders the checkout placed but may not fulfil until risk staff decide.

Approve: the case is closed and fulfilment resumes (a paid order is sent to the pipeline's
fulfilment task after commit). Reject: the case is closed with the reason, then the paid amount
is refunded through ``orders.services.refund_order`` — outside the transaction, since it calls
the gateway — and the refund's ``order_refunded`` signal reverses the commissions.
Both are logged with ``record_audit``; deciding twice returns the first decision.
"""

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from distribution.services.four_eyes import require_not_own_order
from kamen.audit import record_audit

from .models import ReviewCase, ReviewStatus, RiskEvent

logger = logging.getLogger(__name__)


def open_review_case(*, order) -> ReviewCase:
    from .services import link_signal_to_order

    signal = link_signal_to_order(order=order)
    reasons = ""
    if signal is not None:
        reasons = "；".join(
            RiskEvent.objects.filter(signal=signal).values_list(
                "explanation", flat=True
            )
        )[:300]
    case, _created = ReviewCase.objects.get_or_create(
        order=order,
        defaults={
            "signal": signal,
            "reasons": reasons or signal.explanation[:300] if signal else "",
        },
    )
    return case


def _decide(
    *, order, status: str, actor, reason: str, request=None
) -> tuple[ReviewCase, bool]:
    require_not_own_order(actor=actor, order=order, what=_("风控审核"))
    reason = (reason or "").strip()
    if status == ReviewStatus.REJECTED and not reason:
        raise ValidationError({"reason": [_("拒绝时请填写原因")]})
    with transaction.atomic():
        case = ReviewCase.objects.select_for_update().filter(order=order).first()
        if case is None:
            case = open_review_case(order=order)
            case = ReviewCase.objects.select_for_update().get(pk=case.pk)
        if case.status != ReviewStatus.PENDING:
            if case.status == status:
                return case, False
            raise ValidationError(
                _("该订单已审核（%(status)s），不能再改为其他结论")
                % {"status": case.get_status_display()}
            )
        case.status = status
        case.decision_reason = reason[:200]
        case.decided_by = actor if getattr(actor, "is_authenticated", False) else None
        case.decided_at = timezone.now()
        case.save(
            update_fields=["status", "decision_reason", "decided_by", "decided_at"]
        )
        record_audit(
            actor=actor,
            action=f"riskcontrol.review_{status}",
            target=case,
            target_repr=f"{order.order_no}",
            changes={
                "status": [ReviewStatus.PENDING, status],
                "reason": [None, reason[:200]],
            },
            request=request,
        )
    return case, True


def release_held_order(*, order, actor, reason: str = "", request=None) -> ReviewCase:
    """Approve a held order: its fulfilment resumes now if it is paid, or as soon as it is."""
    case, changed = _decide(
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
    from orders.models import Order, OrderStatus

    current = Order.objects.only("status").get(pk=order.pk)
    if current.status not in (
        OrderStatus.PAID,
        OrderStatus.BACKORDERED,
        OrderStatus.FAILED,
    ):
        return False
    try:
        from orders.services.enqueue import run_task_now_or_enqueue
    except ImportError:  # the pipeline is not on this branch yet
        logger.warning(
            "riskcontrol.resume_unavailable", extra={"order": order.order_no}
        )
        return False
    run_task_now_or_enqueue("fulfil_order_task", order_id=order.pk)
    return True


def reject_held_order(*, order, actor, reason: str, request=None) -> ReviewCase:
    """Reject a held order: refund what was paid (commissions are reversed by the refund)."""
    case, _changed = _decide(
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
    from orders.models import Order

    current = Order.objects.get(pk=order.pk)
    left = current.paid_amount - current.refunded_amount
    if left <= 0:
        return None
    from orders.services import refund_order

    return refund_order(
        order=current,
        amount=left,
        reason=(_("风控审核拒绝：%(reason)s") % {"reason": reason})[:200],
        actor=actor,
        out_refund_no=f"R{current.order_no}-risk",
        request=request,
    )
