"""A distributor paying the merchant through the payment gateway for something that is not an
order: a prepaid top-up (``T…``, top_ups.py) or a grade's deposit (``D…``, deposits.py).

Both start the same way (a numbered row, then the gateway's cashier, the gateway call outside
any transaction) and end the same way: the shop's one notify URL verifies the signature and
sends the notification here by its number's prefix; the raw callback is stored under the
provider's event id, the row locked, app id, currency and amount checked, and ``credit`` (the
ledger posting) runs once — retries and duplicates find it done, a mismatch is stored as
rejected and changes nothing.
"""

import secrets
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Model
from django.utils import timezone
from django.utils.translation import gettext as _

from orders.gateways import PaymentOutcome, PaymentRequest, get_gateway
from orders.models import CallbackOutcome, PaymentCallback, TopUpStatus

__all__ = ["apply_prepayment_notification", "new_prepayment_number", "start_prepayment"]

CURRENCY = "CNY"


def new_prepayment_number(prefix: str) -> str:
    return f"{prefix}{timezone.now():%Y%m%d%H%M%S}{secrets.randbelow(10**6):06d}"


def start_prepayment(
    *, number: str, amount: Decimal, subject: str, notify_url: str, return_url: str, gateway_code: str
):
    """The gateway's start for a row already saved as ``number``: where to send the payer."""
    return get_gateway(gateway_code).start_payment(
        PaymentRequest(
            out_trade_no=number,
            amount=amount,
            subject=subject,
            notify_url=notify_url,
            return_url=return_url,
            client_ip="",
            expires_at=timezone.now() + timedelta(minutes=30),
        )
    )


def _rejection(row, notification, expected_app_id: str, missing: str) -> str:
    if expected_app_id and notification.app_id != expected_app_id:
        return _("应用 ID 不符")
    if row is None:
        return missing
    if notification.currency != CURRENCY:
        return _("币种不符：%(currency)s") % {"currency": notification.currency[:8]}
    if Decimal(notification.amount) != row.amount:
        return _("金额不符：通知 %(paid)s，充值单 %(total)s") % {"paid": notification.amount, "total": row.amount}
    return ""


def apply_prepayment_notification(
    *,
    model: type[Model],
    number_field: str,
    missing: str,
    credit: Callable[[Model], None],
    notification,
    gateway_code: str,
    expected_app_id: str,
    source: str,
    raw_body: str,
    headers: dict,
    source_ip,
) -> PaymentCallback:
    """A verified notification for a ``model`` row (amount, status, credited_at) numbered in
    ``number_field``: ``credit(row)`` once, under the row's lock. Returns the stored callback."""
    with transaction.atomic():
        row = model.objects.select_for_update().filter(**{number_field: notification.out_trade_no[:32]}).first()
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
        reason = _rejection(row, notification, expected_app_id, missing)
        if reason:
            fields.update(outcome=CallbackOutcome.REJECTED, rejection_reason=reason[:300])
        elif notification.outcome != PaymentOutcome.SUCCEEDED:
            fields.update(outcome=CallbackOutcome.IGNORED)
        elif row.status == TopUpStatus.CREDITED:
            fields.update(outcome=CallbackOutcome.DUPLICATE)
        else:
            credit(row)
            model.objects.filter(pk=row.pk).update(status=TopUpStatus.CREDITED, credited_at=timezone.now())
            fields.update(outcome=CallbackOutcome.PAID)
        try:
            with transaction.atomic():
                return PaymentCallback.objects.create(**fields)
        except IntegrityError:
            return PaymentCallback.objects.get(gateway=gateway_code, event_id=notification.event_id[:128])
