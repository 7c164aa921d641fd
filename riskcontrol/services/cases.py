"""The review queue: orders the checkout placed but may not fulfil until risk staff decide.

Checkout opens the case (``open_review_case``) in the order's transaction; staff decide it
(``decide_review_case``, logged with ``record_audit``; deciding twice returns the first
decision). What the decision does to the order — fulfilment resumes, or the payment is
refunded — is the orders app's (``orders.services.review``), which calls this one first.
"""

import logging
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from distribution.services.four_eyes import require_not_own_order
from kamen.audit import record_audit

from ..models import ReviewCase, ReviewStatus, RiskEvent, RiskSignal, SignalKind
from .signals import contact_index

logger = logging.getLogger(__name__)


def open_review_case(*, order) -> ReviewCase:
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


def decide_review_case(
    *, order, status: str, actor, reason: str, request=None
) -> tuple[ReviewCase, bool]:
    """Close the order's case as ``status`` with ``reason`` (required to reject), audited;
    True when this call decided it, False when it was already so. What follows for the
    order (fulfilment resumes, the payment is refunded) is ``orders.services.review``'s."""
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


def link_signal_to_order(*, order) -> RiskSignal | None:
    """Tie the checkout's signal to the order it became (by checkout token, else the latest
    matching signal of the last minutes)."""
    with transaction.atomic():
        signal = None
        if order.checkout_token:
            signal = (
                RiskSignal.objects.filter(
                    checkout_token=order.checkout_token, order_no=""
                )
                .order_by("-id")
                .first()
            )
        if signal is None:
            signal = (
                RiskSignal.objects.filter(
                    kind=SignalKind.CHECKOUT,
                    order_no="",
                    contact_index=contact_index(order.contact),
                    product_id=order.product_id,
                    amount=order.total_amount,
                    created_at__gte=timezone.now() - timedelta(minutes=10),
                )
                .order_by("-id")
                .first()
            )
        if signal is not None:
            RiskSignal.objects.filter(pk=signal.pk).update(order_no=order.order_no)
            RiskEvent.objects.filter(signal=signal).update(order_no=order.order_no)
            signal.order_no = order.order_no
    return signal
