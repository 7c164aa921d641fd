"""The whole of an order's money in the journal (docs/adr/0020): payment, gateway fee, cost of
goods, commissions and price differences, and the merchant's profit, balanced to the fen.

Accounts (merchant books, ``distributor`` empty), with the ledger's sign (credit − debit):

* ``gateway_clearing`` is debited with what the buyer paid through a gateway and credited
  with what is refunded: what the gateway holds for the merchant before its fee.
* ``merchant_revenue`` is a transit account: the payment is credited to it, and every fen of it
  is passed on — to ``gateway_fees`` (the fee), ``supplier_cost`` (the cost of the goods
  delivered: each card key's batch cost, the supplier's charged price of a top-up, the
  product's cost price otherwise), the distributors (commissions and sub-store price
  differences, posted by ``split_commissions``: never booked again here) and
  ``merchant_profit`` (what is left). Delivery closes it: after it the order's revenue lines
  sum to zero.

Each event is one journal transaction in the event's own database transaction:

* paid (``book_payment``): clearing ← payment → revenue, revenue → fee. One statement.
* delivered (``book_delivery``): revenue → cost, revenue → profit. One read (the order's lines
  so far and the cost of its goods), one statement.
* refunded (``book_refund``): the order's books brought in line with what is left of the
  payment, from the lines already posted (so partial refunds, retries and any order of events
  land on the same figures): clearing credited with the refund, cost and — when the gateway
  gives it back — the fee reversed in proportion, profit the balancing figure. After a full
  refund every account of the order is back to zero except the fee the gateway kept, which
  stays in ``gateway_fees`` and, as a loss, in ``merchant_profit``.

These functions take plain values; the orders app calls them (this app never imports it).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kamen.db import fetch_rows, fetch_rows_in_one_round_trip
from kamen.money import ZERO, to_fen

from .. import sql as commissions_sql
from ..models import AccountKind, EntrySide, TransactionKind

K = AccountKind
BOOK_KINDS = (
    K.GATEWAY_CLEARING,
    K.MERCHANT_REVENUE,
    K.GATEWAY_FEES,
    K.SUPPLIER_COST,
    K.MERCHANT_PROFIT,
)
# Where each kind of line of an order shows in its statement, in this order.
LINE_ORDER = {kind.value: n for n, kind in enumerate(BOOK_KINDS)}


def payment_reference(order_id: int) -> str:
    return f"books:paid:{order_id}"


def delivery_reference(order_id: int) -> str:
    return f"books:delivered:{order_id}"


def refund_reference(order_id: int, refunded: Decimal) -> str:
    return f"books:refund:{order_id}:{Decimal(refunded):.2f}"


# --- posting: merchant accounts named by kind ---------------------------------------------------
def ensure_statement(kinds, now=None) -> tuple[str, dict]:
    """The statement that makes the merchant's book accounts of ``kinds`` that are missing."""
    return (
        commissions_sql.ENSURE_BOOK_ACCOUNTS,
        {"kinds": sorted({str(kind) for kind in kinds}), "now": now or timezone.now()},
    )


def _lines(signed: dict[str, Decimal], reference: str) -> list[tuple[str, str, Decimal]]:
    lines = [
        (kind_, EntrySide.CREDIT if amount > 0 else EntrySide.DEBIT, abs(amount))
        for kind_, amount in sorted(signed.items(), key=lambda item: LINE_ORDER[item[0]])
        if amount
    ]
    debits = sum((amount for _k, side, amount in lines if side == EntrySide.DEBIT), ZERO)
    credits = sum((amount for _k, side, amount in lines if side == EntrySide.CREDIT), ZERO)
    if lines and (debits != credits or len(lines) < 2):
        raise ValueError(f"order books {reference}: debits {debits} differ from credits {credits}")
    return lines


def _statements(*, kind: str, reference: str, memo: str, order_id: int, lines) -> list[tuple[str, dict]]:
    return [
        ensure_statement(kind_ for kind_, _side, _amount in lines),
        _statement(kind=kind, reference=reference, memo=memo, order_id=order_id, lines=lines),
    ]


def _statement(*, kind: str, reference: str, memo: str, order_id: int, lines) -> tuple[str, dict]:
    return (
        commissions_sql.BOOKS,
        {
            "line_kinds": [kind_ for kind_, _side, _amount in lines],
            "sides": [str(side) for _kind, side, _amount in lines],
            "amounts": [amount for _kind, _side, amount in lines],
            "kind": str(kind),
            "reference": reference,
            "memo": memo[:200],
            "order": order_id,
            "now": timezone.now(),
        },
    )


def _post(*, kind: str, reference: str, memo: str, order_id: int, signed: dict[str, Decimal]) -> bool:
    """Post one transaction on merchant accounts from signed amounts by account kind (credit
    positive); nothing when every amount is zero. True when posted now (False: the reference
    was posted before). One round trip."""
    lines = _lines(signed, reference)
    if not lines:
        return False
    with transaction.atomic(savepoint=False):
        statements = _statements(kind=kind, reference=reference, memo=memo, order_id=order_id, lines=lines)
        ((posted,),) = fetch_rows_in_one_round_trip(statements)
        return bool(posted)


# --- the order's books so far -------------------------------------------------------------------
@dataclass
class BookedLines:
    """An order's merchant lines, signed (credit − debit), by account kind: in total and by the
    kind of transaction that posted them; and the cost of its goods when asked for."""

    by_account: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    by_transaction: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    cost_of_goods: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return sum(self.by_account.values(), ZERO)


def booked_lines(*, order_id: int, order_no: str = "", parts=()) -> BookedLines:
    """The order's merchant lines so far (one query); with ``parts`` ((product id, quantity),
    a bundle by its items) the cost of the goods delivered for them, in the same query."""
    parts = list(parts)
    parameters = {
        "order": order_id,
        "order_no": order_no,
        "products": [product_id for product_id, _quantity in parts],
        "quantities": [quantity for _product_id, quantity in parts],
        "with_cost": bool(parts),
    }
    rows = fetch_rows(commissions_sql.BOOKED_LINES, parameters)
    booked = BookedLines()
    for transaction_kind, account_kind, amount, cost in rows:
        if transaction_kind is None:
            booked.cost_of_goods = to_fen(Decimal(cost or 0))
            continue
        booked.by_account[account_kind] += amount
        booked.by_transaction[(transaction_kind, account_kind)] += amount
    return booked


# --- the three events ---------------------------------------------------------------------------
def payment_lines(*, amount: Decimal, fee: Decimal, through_gateway: bool = True) -> dict[str, Decimal]:
    amount, fee = Decimal(amount), Decimal(fee)
    if not 0 <= fee <= amount:
        raise ValueError(f"a fee of {fee} on a payment of {amount}")
    signed = {K.MERCHANT_REVENUE.value: amount - fee, K.GATEWAY_FEES.value: fee}
    if through_gateway:
        signed[K.GATEWAY_CLEARING.value] = -amount
    else:  # a wallet payment: its own posting (wallet:<order>) credited revenue with the payment
        signed[K.MERCHANT_REVENUE.value] = -fee
    return signed


def payment_statements(
    *, order_id: int, order_no: str, amount: Decimal, fee: Decimal, through_gateway: bool = True
) -> list[tuple[str, dict]]:
    """``book_payment`` as statements ``(sql, params)`` for the caller to send with its
    own, in this order: the payment's books travel in the message that marks the
    order paid."""
    reference = payment_reference(order_id)
    return _statements(
        kind=TransactionKind.ORDER_PAYMENT,
        reference=reference,
        memo=_("订单 %(order)s 收款") % {"order": order_no},
        order_id=order_id,
        lines=_lines(payment_lines(amount=amount, fee=fee, through_gateway=through_gateway), reference),
    )


def book_payment(*, order_id: int, order_no: str, amount: Decimal, fee: Decimal, through_gateway: bool = True) -> bool:
    """The buyer's payment and the gateway's fee, once per order: debit the gateway's clearing
    with the payment, credit revenue, and pass the fee on from revenue. Call it in the
    transaction that marks the order paid."""
    signed = payment_lines(amount=amount, fee=fee, through_gateway=through_gateway)
    return _post(
        kind=TransactionKind.ORDER_PAYMENT,
        reference=payment_reference(order_id),
        memo=_("订单 %(order)s 收款") % {"order": order_no},
        order_id=order_id,
        signed=signed,
    )


@dataclass(frozen=True)
class OrderMoney:
    """What an order's books must say, from plain values: paid and refunded so far, whether its
    goods were delivered, whether its gateway returns the fee with a refund, and whether it was
    paid through a gateway (False: the wallet, whose payment line is its own posting)."""

    paid: Decimal
    refunded: Decimal = ZERO
    is_delivered: bool = False
    is_fee_refunded: bool = False
    through_gateway: bool = True


def target_lines(money: OrderMoney, booked: BookedLines, cost_of_goods: Decimal | None = None) -> dict[str, Decimal]:
    """The order's merchant lines as they must stand (signed, by account kind).

    The fee and the cost are the ones booked at payment and delivery (``cost_of_goods`` at the
    delivery itself), reversed in proportion to what was refunded (fully on a full refund), the
    fee only when the gateway gives it back. The profit — or, before delivery, revenue — is the
    balancing figure: what the order's merchant lines already sum to (minus the distributors'
    commissions and price differences, posted by the split and its reversals) stays as it is.
    """
    paid, refunded = Decimal(money.paid), min(Decimal(money.refunded), Decimal(money.paid))
    is_full = paid > 0 and refunded >= paid

    def left(amount: Decimal) -> Decimal:
        if is_full:
            return ZERO
        if paid <= 0 or refunded <= 0:
            return amount
        return amount - to_fen(amount * refunded / paid)

    fee = booked.by_transaction.get((TransactionKind.ORDER_PAYMENT.value, K.GATEWAY_FEES.value), ZERO)
    fee_kept = left(fee) if money.is_fee_refunded else fee
    if cost_of_goods is None:
        cost_of_goods = booked.by_transaction.get((TransactionKind.ORDER_DELIVERY.value, K.SUPPLIER_COST.value), ZERO)
    cost = left(cost_of_goods) if money.is_delivered else ZERO
    target = {
        K.GATEWAY_CLEARING.value: -(paid - refunded) if money.through_gateway else refunded,
        K.GATEWAY_FEES.value: fee_kept,
        K.SUPPLIER_COST.value: cost,
    }
    rest = booked.total - sum(target.values(), ZERO)
    if money.is_delivered or is_full:
        target[K.MERCHANT_REVENUE.value] = ZERO
        target[K.MERCHANT_PROFIT.value] = rest
    else:
        target[K.MERCHANT_REVENUE.value] = rest
        target[K.MERCHANT_PROFIT.value] = ZERO
    return target


def _true_up(*, kind, reference, memo, order_id, booked: BookedLines, target: dict[str, Decimal]) -> bool:
    delta = {kind_: target[kind_] - booked.by_account.get(kind_, ZERO) for kind_ in target}
    return _post(kind=kind, reference=reference, memo=memo, order_id=order_id, signed=delta)


# The delivery of an order with nothing refunded, in one statement: the cost of its goods and
# what its revenue holds (the payment less the fee, the commissions and the price differences
# the split just posted), passed on: revenue → cost, revenue → profit.
DELIVERY_KINDS = (K.MERCHANT_REVENUE, K.SUPPLIER_COST, K.MERCHANT_PROFIT)


def delivery_statements(*, order_id: int, order_no: str, parts) -> list[tuple[str, dict]]:
    """``book_delivery`` of an order with nothing refunded, as statements ``(sql, params)``
    the caller may send with its own, in this order (after the split's)."""
    return [ensure_statement(DELIVERY_KINDS), _delivery_statement(order_id=order_id, order_no=order_no, parts=parts)]


def _delivery_statement(*, order_id: int, order_no: str, parts) -> tuple[str, dict]:
    parts = list(parts)
    return (
        commissions_sql.DELIVERY_BOOKS,
        {
            "order": order_id,
            "order_no": order_no,
            "products": [product_id for product_id, _quantity in parts],
            "quantities": [quantity for _product_id, quantity in parts],
            "kind": TransactionKind.ORDER_DELIVERY.value,
            "reference": delivery_reference(order_id),
            "memo": (_("订单 %(order)s 成本与利润") % {"order": order_no})[:200],
            "now": timezone.now(),
        },
    )


def book_delivery(*, order_id: int, order_no: str, money: OrderMoney, parts) -> bool:
    """The cost of the goods delivered and the merchant's profit, once per order, in the
    delivery's transaction, after the commission split (whose lines it leaves alone):
    revenue → cost, revenue → profit, closing the order's revenue. For an order
    with nothing refunded yet (every order the pipeline completes), one prepared statement."""
    parts = list(parts)
    if not money.refunded:
        statements = delivery_statements(order_id=order_id, order_no=order_no, parts=parts)
        ((posted,),) = fetch_rows_in_one_round_trip(statements)
        return bool(posted)
    booked = booked_lines(order_id=order_id, order_no=order_no, parts=parts)
    target = target_lines(
        OrderMoney(
            paid=money.paid,
            refunded=money.refunded,
            is_delivered=True,
            is_fee_refunded=money.is_fee_refunded,
            through_gateway=money.through_gateway,
        ),
        booked,
        cost_of_goods=booked.cost_of_goods,
    )
    return _true_up(
        kind=TransactionKind.ORDER_DELIVERY,
        reference=delivery_reference(order_id),
        memo=_("订单 %(order)s 成本与利润") % {"order": order_no},
        order_id=order_id,
        booked=booked,
        target=target,
    )


def book_refund(*, order_id: int, order_no: str, money: OrderMoney) -> bool:
    """Bring the order's books in line with its refunded total, once per total: call it in the
    refund's transaction after the commissions were reversed (``reverse_commissions``)."""
    booked = booked_lines(order_id=order_id)
    if any(kind == TransactionKind.ORDER_DELIVERY for kind, _account in booked.by_transaction):
        money = OrderMoney(
            paid=money.paid,
            refunded=money.refunded,
            is_delivered=True,
            is_fee_refunded=money.is_fee_refunded,
            through_gateway=money.through_gateway,
        )
    return _true_up(
        kind=TransactionKind.ORDER_REFUND,
        reference=refund_reference(order_id, money.refunded),
        memo=_("订单 %(order)s 退款 ¥%(amount)s") % {"order": order_no, "amount": f"{Decimal(money.refunded):.2f}"},
        order_id=order_id,
        booked=booked,
        target=target_lines(money, booked),
    )


# --- a stock purchase (进货) ---------------------------------------------------------------------
def stock_purchase_reference(purchase_no: str) -> str:
    return f"books:stock:{purchase_no}"


def stock_purchase_lines(
    *, amount: Decimal, fee: Decimal, cost: Decimal, commissions: Decimal, through_gateway: bool
) -> dict[str, Decimal]:
    """A stock purchase's books, signed by account kind, closing revenue: the payment (through
    the gateway: clearing debited; from the wallet: the wallet's posting already credited
    revenue), the gateway's fee, the keys' cost, the upline's commissions (their accrual
    already debited revenue) and the merchant's profit, the balancing figure."""
    amount, fee, cost, commissions = (Decimal(value) for value in (amount, fee, cost, commissions))
    if not 0 <= fee <= amount:
        raise ValueError(f"a fee of {fee} on a stock purchase of {amount}")
    signed = {
        K.GATEWAY_FEES.value: fee,
        K.SUPPLIER_COST.value: cost,
        K.MERCHANT_PROFIT.value: amount - fee - cost - commissions,
    }
    if through_gateway:
        signed[K.GATEWAY_CLEARING.value] = -amount
        signed[K.MERCHANT_REVENUE.value] = commissions
    else:
        signed[K.MERCHANT_REVENUE.value] = commissions - amount
    return signed


def book_stock_purchase(
    *, purchase_no: str, amount: Decimal, fee: Decimal, cost: Decimal, commissions: Decimal, through_gateway: bool
) -> bool:
    """A completed stock purchase's books, once per purchase, in its transaction (after the
    payment and the upline's accrual). One round trip."""
    return _post(
        kind=TransactionKind.STOCK_PURCHASE,
        reference=stock_purchase_reference(purchase_no),
        memo=_("进货 %(purchase)s 收款、成本与利润") % {"purchase": purchase_no},
        order_id=None,
        signed=stock_purchase_lines(
            amount=amount, fee=fee, cost=cost, commissions=commissions, through_gateway=through_gateway
        ),
    )


__all__ = [
    "BOOK_KINDS",
    "book_stock_purchase",
    "stock_purchase_lines",
    "stock_purchase_reference",
    "BookedLines",
    "OrderMoney",
    "book_delivery",
    "book_payment",
    "book_refund",
    "booked_lines",
    "delivery_reference",
    "delivery_statements",
    "payment_lines",
    "payment_statements",
    "payment_reference",
    "refund_reference",
    "target_lines",
]
