"""Prepaid balance top-up (预存款充值) through the payment gateway.

``start_top_up`` records the top-up and asks the gateway where to send the distributor, the
same way an order's payment starts (the gateway call outside any transaction). The gateway's
signed notification arrives at the shop's notify URL; ``record_payment_notification`` sends
a top-up's number (``T…``) here after the signature is verified, and the part a deposit shares
(``gateway_payments``: callback stored, row locked, amount checked) credits the balance
through the ledger once — retries and duplicates find it done.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from commissions.services import credit_wallet_top_up
from distribution.models import Distributor, DistributorStatus
from kamen.money import InvalidAmount, parse_amount
from orders.gateways import get_gateway
from orders.models import PaymentCallback, TopUp

from .gateway_payments import apply_prepayment_notification, new_prepayment_number, start_prepayment

__all__ = ["TOP_UP_MAX_AMOUNT", "TOP_UP_PREFIX", "apply_top_up_notification", "is_top_up_number", "start_top_up"]

TOP_UP_PREFIX = "T"
TOP_UP_MAX_AMOUNT = Decimal("50000.00")


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
    get_gateway(gateway_code)  # an unknown gateway refuses before anything is saved
    top_up = TopUp.objects.create(
        top_up_no=new_prepayment_number(TOP_UP_PREFIX),
        distributor=distributor,
        amount=amount,
        gateway=gateway_code,
    )
    start = start_prepayment(
        number=top_up.top_up_no,
        amount=amount,
        subject=_("预存款充值"),
        notify_url=notify_url,
        return_url=return_url,
        gateway_code=gateway_code,
    )
    return top_up, start


def apply_top_up_notification(
    *, notification, gateway_code: str, expected_app_id: str, source: str, raw_body: str, headers: dict, source_ip
) -> PaymentCallback:
    """A verified notification for a top-up: credit it once. Returns the stored callback."""
    return apply_prepayment_notification(
        model=TopUp,
        number_field="top_up_no",
        missing=_("充值单不存在"),
        credit=lambda top_up: credit_wallet_top_up(
            distributor_id=top_up.distributor_id, amount=top_up.amount, reference=top_up.top_up_no
        ),
        notification=notification,
        gateway_code=gateway_code,
        expected_app_id=expected_app_id,
        source=source,
        raw_body=raw_body,
        headers=headers,
        source_ip=source_ip,
    )
