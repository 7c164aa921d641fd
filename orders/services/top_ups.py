"""Prepaid balance top-up (预存款充值) through the payment gateway.

``start_top_up`` records the top-up and asks the gateway where to send the distributor, the
same way an order's payment starts (the gateway call outside any transaction). The gateway's
signed notification arrives at the shop's notify URL; ``record_payment_notification`` sends
a top-up's number (``T…``) to ``apply_top_up_notification`` after the signature is verified
(``gateway_payables``: the raw callback stored under the provider's event id, the top-up row
locked, the amount and currency checked) and the balance is credited through the ledger once
— retries and duplicates find it done. The credit's counter-entry is the gateway's clearing
account, as for a buyer's payment, with the gateway's fee passed on from the merchant's profit.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from commissions.services import credit_wallet_top_up
from distribution.models import Distributor, DistributorStatus
from kamen.money import InvalidAmount, parse_amount
from orders.gateways import get_gateway
from orders.gateways.configured import fee_schedule
from orders.models import TopUp, TopUpStatus

from .gateway_payables import Payable, apply_payable_notification, new_payable_number, start_gateway_payment

__all__ = [
    "TOP_UP_MAX_AMOUNT",
    "TOP_UP_PAYABLE",
    "TOP_UP_PREFIX",
    "apply_top_up_notification",
    "is_top_up_number",
    "start_top_up",
]

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
        top_up_no=new_payable_number(TOP_UP_PREFIX),
        distributor=distributor,
        amount=amount,
        gateway=gateway_code,
    )
    start = start_gateway_payment(
        number=top_up.top_up_no,
        amount=amount,
        subject=_("预存款充值"),
        notify_url=notify_url,
        return_url=return_url,
        gateway_code=gateway_code,
    )
    return top_up, start


def _credit(top_up: TopUp, gateway_code: str) -> None:
    credit_wallet_top_up(
        distributor_id=top_up.distributor_id,
        amount=top_up.amount,
        reference=top_up.top_up_no,
        fee=fee_schedule(gateway_code).fee(top_up.amount),
    )
    TopUp.objects.filter(pk=top_up.pk).update(status=TopUpStatus.CREDITED, credited_at=timezone.now())


TOP_UP_PAYABLE = Payable(
    prefix=TOP_UP_PREFIX,
    lock=lambda number: TopUp.objects.select_for_update().filter(top_up_no=number).first(),
    amount_of=lambda top_up: top_up.amount,
    is_settled=lambda top_up: top_up.status == TopUpStatus.CREDITED,
    settle=_credit,
    missing=gettext_lazy("充值单不存在"),
)


def apply_top_up_notification(**arguments):
    """A verified notification for a top-up: credit it once. Returns the stored callback."""
    return apply_payable_notification(payable=TOP_UP_PAYABLE, **arguments)
