"""What a distributor pays through the payment gateway that is not a shop order: a prepaid
top-up (``T…``), a stock purchase (``S…``) and a grade's deposit (``D…``). One way to
start the payment and one way to apply its verified notification, so each of them gets the
same guarantees as an order's payment.

Each kind is a ``Payable``: the prefix of its numbers, how to lock its row by number, its
amount, whether it is already settled, and what settling it does (in the callback's
transaction, under the row lock). ``apply_payable_notification`` stores the raw callback under
the provider's event id (a retry finds it and does nothing), locks the row, checks the app id,
currency and amount, and settles it once; a second event for a settled row is a duplicate.
"""

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from orders.gateways import PaymentOutcome, PaymentRequest, get_gateway
from orders.models import CallbackOutcome, PaymentCallback

__all__ = ["Payable", "apply_payable_notification", "new_payable_number", "payable_for", "start_gateway_payment"]

CURRENCY = "CNY"


@dataclass(frozen=True)
class Payable:
    prefix: str
    lock: Callable[[str], object | None]  # the row by its number, select_for_update, or None
    amount_of: Callable[[object], Decimal]
    is_settled: Callable[[object], bool]
    settle: Callable[[object, str], None]  # (row, gateway code), in the callback's transaction
    missing: str  # what the rejection says when no row has the number


def new_payable_number(prefix: str) -> str:
    return f"{prefix}{timezone.now():%Y%m%d%H%M%S}{secrets.randbelow(10**6):06d}"


def payable_for(out_trade_no: str, payables: Iterable[Payable]) -> Payable | None:
    return next((payable for payable in payables if out_trade_no.startswith(payable.prefix)), None)


def start_gateway_payment(
    *, number: str, amount: Decimal, subject: str, notify_url: str, return_url: str, gateway_code: str
):
    """Where to send the payer (the gateway's start); call it outside any transaction."""
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


def _rejection(payable: Payable, row, notification, expected_app_id: str) -> str:
    if expected_app_id and notification.app_id != expected_app_id:
        return _("应用 ID 不符")
    if row is None:
        return str(payable.missing)
    if notification.currency != CURRENCY:
        return _("币种不符：%(currency)s") % {"currency": notification.currency[:8]}
    if Decimal(notification.amount) != payable.amount_of(row):
        return _("金额不符：通知 %(paid)s，应付 %(total)s") % {
            "paid": notification.amount,
            "total": payable.amount_of(row),
        }
    return ""


def apply_payable_notification(
    *,
    payable: Payable,
    notification,
    gateway_code: str,
    expected_app_id: str,
    source: str,
    raw_body: str,
    headers: dict,
    source_ip,
) -> PaymentCallback:
    """A verified notification for ``payable``: settle it once. Returns the stored callback."""
    event_id = notification.event_id[:128]
    with transaction.atomic():
        row = payable.lock(notification.out_trade_no[:32])
        existing = PaymentCallback.objects.filter(gateway=gateway_code, event_id=event_id).first()
        if existing is not None:
            PaymentCallback.objects.filter(pk=existing.pk).update(times_received=F("times_received") + 1)
            return existing
        fields = {
            "gateway": gateway_code,
            "event_id": event_id,
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
        reason = _rejection(payable, row, notification, expected_app_id)
        if reason:
            fields.update(outcome=CallbackOutcome.REJECTED, rejection_reason=reason[:300])
        elif notification.outcome != PaymentOutcome.SUCCEEDED:
            fields.update(outcome=CallbackOutcome.IGNORED)
        elif payable.is_settled(row):
            fields.update(outcome=CallbackOutcome.DUPLICATE)
        else:
            payable.settle(row, gateway_code)
            fields.update(outcome=CallbackOutcome.PAID)
        try:
            with transaction.atomic():
                return PaymentCallback.objects.create(**fields)
        except IntegrityError:
            return PaymentCallback.objects.get(gateway=gateway_code, event_id=event_id)
