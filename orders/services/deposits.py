"""A grade's deposit (保证金) paid through the payment gateway, and the first-order threshold
counted from real paid orders (docs/adr/0023).

Deposit: ``start_deposit_payment`` records a ``D…`` payment for exactly what is still owed and
asks the gateway where to send the distributor (an applicant too: paying is how they become
eligible). The verified notification comes here by its number (``apply_deposit_notification``,
the part it shares with a top-up and a stock purchase in ``gateway_payables``) and ``commissions.hold_deposit``
books it into the deposit account once.

First order: checkout marks an order ``first_order_pending`` when its buyer is a distributor
whose grade's first-order amount they have not reached; the payment of such an order (in its
own transaction) sums the buyer's marked orders, paid, less refunds, and tells the network
(``distribution.services.record_first_order``), which records the threshold and admits an
applicant of an automatically admitted grade. Unpaid, expired and refunded orders do not count.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import F, Sum
from django.db.models.fields.json import KT
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from commissions.services.deposits import deposit_balance, hold_deposit
from distribution.models import Distributor, DistributorStatus
from distribution.selectors import sold_statuses
from distribution.services import record_first_order
from kamen.money import ZERO, InvalidAmount, parse_amount
from orders.gateways import get_gateway
from orders.models import DepositPayment, Order, PaymentCallback, TopUpStatus

from .gateway_payables import Payable, apply_payable_notification, new_payable_number, start_gateway_payment

__all__ = [
    "DEPOSIT_PAYABLE",
    "DEPOSIT_PREFIX",
    "apply_deposit_notification",
    "count_first_order",
    "deposit_outstanding",
    "is_deposit_number",
    "own_paid_total",
    "start_deposit_payment",
]

DEPOSIT_PREFIX = "D"


def is_deposit_number(out_trade_no: str) -> bool:
    return out_trade_no.startswith(DEPOSIT_PREFIX)


def deposit_outstanding(distributor: Distributor) -> Decimal:
    """What the distributor still owes of their deposit (0 when none is required or all is held)."""
    if distributor.deposit_amount <= 0:
        return ZERO
    return max(distributor.deposit_amount - deposit_balance(distributor.pk), ZERO)


def start_deposit_payment(
    *, distributor_id: int, amount, notify_url: str, return_url: str = "", gateway_code: str = "sandbox"
):
    """(the deposit payment, the gateway's start). ``amount`` must be exactly what is owed."""
    distributor = Distributor.objects.filter(pk=distributor_id).first()
    if distributor is None or distributor.status not in (DistributorStatus.APPLIED, DistributorStatus.ACTIVE):
        raise ValidationError(_("只有待审核或正常状态的分销商可以缴纳保证金"))
    if distributor.deposit_amount <= 0:
        raise ValidationError(_("您的等级无需缴纳保证金"))
    owed = deposit_outstanding(distributor)
    if owed <= 0:
        raise ValidationError(_("保证金已缴清，无需再缴"))
    try:
        amount = parse_amount(amount)
    except InvalidAmount:
        raise ValidationError(
            {"amount": [_("“%(raw)s”不是有效金额（最多两位小数，大于 0）") % {"raw": amount}]}
        ) from None
    if amount != owed:
        raise ValidationError({"amount": [_("应缴保证金 ¥%(owed)s，金额不符") % {"owed": owed}]})
    get_gateway(gateway_code)  # an unknown gateway refuses before anything is saved
    payment = DepositPayment.objects.create(
        deposit_no=new_payable_number(DEPOSIT_PREFIX),
        distributor=distributor,
        amount=amount,
        gateway=gateway_code,
    )
    start = start_gateway_payment(
        number=payment.deposit_no,
        amount=amount,
        subject=_("保证金"),
        notify_url=notify_url,
        return_url=return_url,
        gateway_code=gateway_code,
    )
    return payment, start


def _hold(payment: DepositPayment, _gateway_code: str) -> None:
    hold_deposit(distributor_id=payment.distributor_id, amount=payment.amount, reference=payment.deposit_no)
    DepositPayment.objects.filter(pk=payment.pk).update(status=TopUpStatus.CREDITED, credited_at=timezone.now())


DEPOSIT_PAYABLE = Payable(
    prefix=DEPOSIT_PREFIX,
    lock=lambda number: DepositPayment.objects.select_for_update().filter(deposit_no=number).first(),
    amount_of=lambda payment: payment.amount,
    is_settled=lambda payment: payment.status == TopUpStatus.CREDITED,
    settle=_hold,
    missing=gettext_lazy("保证金单不存在"),
)


def apply_deposit_notification(**arguments) -> PaymentCallback:
    """A verified notification for a deposit payment: held once. Returns the stored callback."""
    return apply_payable_notification(payable=DEPOSIT_PAYABLE, **arguments)


def own_paid_total(distributor_id: int) -> Decimal:
    """The distributor's own purchases that count towards their first order — orders they
    placed while logged in and short of it (marked at checkout) — paid and not refunded, less
    partial refunds. Served by the partial index ``order_first_order_idx``."""
    return (
        Order.objects.annotate(buyer=KT("attribution__buyer_distributor_id"))
        .filter(
            attribution__has_key="first_order_pending",
            buyer=str(distributor_id),
            paid_at__isnull=False,
            status__in=sold_statuses(),
        )
        .aggregate(total=Sum(F("paid_amount") - F("refunded_amount"), default=ZERO))["total"]
    )


def count_first_order(*, order: Order) -> bool:
    """``order`` was just paid (in this transaction) by a buyer still short of their grade's
    first-order amount: tell the network what their paid orders now add up to."""
    buyer_id = (order.attribution or {}).get("buyer_distributor_id")
    if not buyer_id:
        return False
    return record_first_order(distributor_id=buyer_id, paid_total=own_paid_total(buyer_id))
