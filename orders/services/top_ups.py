"""Prepaid balance top-up (预存款充值) through the payment gateway.

``start_top_up`` records the top-up and asks the gateway where to send the distributor, the
same way an order's payment starts (the gateway call outside any transaction). The gateway's
signed notification arrives at the shop's notify URL; ``record_payment_notification`` sends
a top-up's number (``T…``) here after the signature is verified: the raw callback is stored
under the provider's event id, the top-up row locked, the amount and currency checked, and the
balance credited through the ledger once — retries and duplicates find it done.
"""

import secrets
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from commissions.services import credit_wallet_top_up
from distribution.models import Distributor, DistributorStatus
from kamen.money import InvalidAmount, parse_amount
from orders.gateways import PaymentOutcome, PaymentRequest, get_gateway
from orders.models import CallbackOutcome, PaymentCallback, TopUp, TopUpStatus

__all__ = ["TOP_UP_MAX_AMOUNT", "TOP_UP_PREFIX", "apply_top_up_notification", "is_top_up_number", "start_top_up"]

TOP_UP_PREFIX = "T"
TOP_UP_MAX_AMOUNT = Decimal("50000.00")
CURRENCY = "CNY"


def is_top_up_number(out_trade_no: str) -> bool:
    return out_trade_no.startswith(TOP_UP_PREFIX)


def _amount(raw) -> Decimal:
    try:
        amount = parse_amount(raw)
    except InvalidAmount:
        raise ValidationError({"amount": [_("“%(raw)s”不是有效金额（最多两位小数，大于 0）") % {"raw": raw}]}) from None
    if amount > TOP_UP_MAX_AMOUNT:
        raise ValidationError({"amount": [_("单次充值不能超过 ¥%(max)s") % {"max": TOP_UP_MAX_AMOUNT}]})
    return amount


def start_top_up(*, distributor_id: int, amount, notify_url: str, return_url: str = "", gateway_code: str = "sandbox"):
    """(the top-up, the gateway's start: where to send the distributor)."""
    amount = _amount(amount)
    distributor = Distributor.objects.filter(pk=distributor_id).first()
    if distributor is None or distributor.status != DistributorStatus.ACTIVE:
        raise ValidationError(_("只有正常状态的分销商可以充值"))
    gateway = get_gateway(gateway_code)
    top_up = TopUp.objects.create(
        top_up_no=f"{TOP_UP_PREFIX}{timezone.now():%Y%m%d%H%M%S}{secrets.randbelow(10**6):06d}",
        distributor=distributor,
        amount=amount,
        gateway=gateway_code,
    )
    start = gateway.start_payment(
        PaymentRequest(
            out_trade_no=top_up.top_up_no,
            amount=amount,
            subject=_("预存款充值"),
            notify_url=notify_url,
            return_url=return_url,
            client_ip="",
            expires_at=timezone.now() + timedelta(minutes=30),
        )
    )
    return top_up, start


def _rejection(top_up: TopUp | None, notification, expected_app_id: str) -> str:
    if expected_app_id and notification.app_id != expected_app_id:
        return _("应用 ID 不符")
    if top_up is None:
        return _("充值单不存在")
    if notification.currency != CURRENCY:
        return _("币种不符：%(currency)s") % {"currency": notification.currency[:8]}
    if Decimal(notification.amount) != top_up.amount:
        return _("金额不符：通知 %(paid)s，充值单 %(total)s") % {"paid": notification.amount, "total": top_up.amount}
    return ""


def apply_top_up_notification(
    *, notification, gateway_code: str, expected_app_id: str, source: str, raw_body: str, headers: dict, source_ip
) -> PaymentCallback:
    """A verified notification for a top-up: credit it once. Returns the stored callback."""
    with transaction.atomic():
        top_up = TopUp.objects.select_for_update().filter(top_up_no=notification.out_trade_no[:32]).first()
        existing = PaymentCallback.objects.filter(gateway=gateway_code, event_id=notification.event_id[:128]).first()
        if existing is not None:
            PaymentCallback.objects.filter(pk=existing.pk).update(times_received=F("times_received") + 1)
            return existing
        fields = {
            "gateway": gateway_code,
            "event_id": notification.event_id[:128],
            "source": source,
            "order": None,
            "out_trade_no": notification.out_trade_no[:64],
            "amount": notification.amount,
            "currency": notification.currency[:8],
            "is_verified": True,
            "raw_body": raw_body,
            "headers": headers or {},
            "payload": {key: str(value) for key, value in dict(notification.raw).items()},
            "source_ip": source_ip,
        }
        reason = _rejection(top_up, notification, expected_app_id)
        if reason:
            fields.update(outcome=CallbackOutcome.REJECTED, rejection_reason=reason[:300])
        elif notification.outcome != PaymentOutcome.SUCCEEDED:
            fields.update(outcome=CallbackOutcome.IGNORED)
        elif top_up.status == TopUpStatus.CREDITED:
            fields.update(outcome=CallbackOutcome.DUPLICATE)
        else:
            credit_wallet_top_up(distributor_id=top_up.distributor_id, amount=top_up.amount, reference=top_up.top_up_no)
            TopUp.objects.filter(pk=top_up.pk).update(status=TopUpStatus.CREDITED, credited_at=timezone.now())
            fields.update(outcome=CallbackOutcome.PAID)
        try:
            with transaction.atomic():
                return PaymentCallback.objects.create(**fields)
        except IntegrityError:
            return PaymentCallback.objects.get(gateway=gateway_code, event_id=notification.event_id[:128])
