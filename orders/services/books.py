"""The order's side of its books (docs/adr/0020): what the journal needs from an order, as
plain values, at the three events that move its money — paid, delivered, refunded. Each call
runs in the event's own transaction, under the order's row lock.

The gateway's fee comes from the merchant's fee settings of the gateway that took the money
(``orders.gateways.configured.fee_schedule``); the cost of the goods is read by the journal
from what was delivered (the parts: a bundle by its items).
"""

from decimal import Decimal

from catalog.models import BundleItem, ProductType
from commissions.services import books, reverse_commissions
from orders.gateways.configured import fee_schedule
from orders.models import Order

__all__ = ["book_delivered_order", "book_paid_order", "paid_order_statement", "delivered_order_statement", "book_refunded_order", "order_money", "order_parts"]

# Ways in whose payment is not held by a gateway: the wallet's own posting is the payment line.
_NOT_THROUGH_A_GATEWAY = frozenset({"wallet"})


def order_money(order: Order, *, is_delivered: bool = False) -> books.OrderMoney:
    return books.OrderMoney(
        paid=Decimal(order.paid_amount),
        refunded=Decimal(order.refunded_amount or 0),
        is_delivered=is_delivered,
        is_fee_refunded=fee_schedule(order.payment_gateway).is_refunded,
        through_gateway=order.payment_gateway not in _NOT_THROUGH_A_GATEWAY,
    )


def order_parts(order: Order) -> list[tuple[int, int]]:
    """(product id, quantity) of what the order delivers: a bundle by its items."""
    if order.product_type != ProductType.BUNDLE:
        return [(order.product_id, order.quantity)]
    items = BundleItem.objects.filter(bundle_id=order.product_id).order_by("component_id")
    return [(item.component_id, item.quantity * order.quantity) for item in items]


def book_paid_order(order: Order) -> None:
    """The payment and the gateway's fee, in the transaction that marks ``order`` paid."""
    through_gateway = order.payment_gateway not in _NOT_THROUGH_A_GATEWAY
    paid = Decimal(order.paid_amount)
    books.book_payment(
        order_id=order.pk,
        order_no=order.order_no,
        amount=paid,
        fee=fee_schedule(order.payment_gateway).fee(paid) if through_gateway else Decimal("0.00"),
        through_gateway=through_gateway,
    )


def paid_order_statement(order: Order, *, amount: Decimal, gateway_code: str) -> tuple[str, dict, str]:
    """``book_paid_order`` as a statement for the message that marks the order paid."""
    through_gateway = gateway_code not in _NOT_THROUGH_A_GATEWAY
    amount = Decimal(amount)
    return books.payment_statement(
        order_id=order.pk,
        order_no=order.order_no,
        amount=amount,
        fee=fee_schedule(gateway_code).fee(amount) if through_gateway else Decimal("0.00"),
        through_gateway=through_gateway,
    )


def book_delivered_order(order: Order) -> None:
    """Cost of goods and profit, in the delivery's transaction, after the commission split."""
    books.book_delivery(
        order_id=order.pk,
        order_no=order.order_no,
        money=order_money(order, is_delivered=True),
        parts=order_parts(order),
    )


def delivered_order_statement(order: Order) -> tuple[str, dict, str]:
    """``book_delivered_order`` of an order with nothing refunded, as a statement for the
    message that moves it to completed (PostgreSQL)."""
    return books.delivery_statement(order_id=order.pk, order_no=order.order_no, parts=order_parts(order))


def book_refunded_order(order: Order) -> None:
    """In the refund's transaction, with ``order`` carrying its new refunded total: the
    commissions reversed in proportion (the ``order_refunded`` receiver then finds nothing left
    to do), then the order's own lines brought in line."""
    reverse_commissions(order=order)
    books.book_refund(order_id=order.pk, order_no=order.order_no, money=order_money(order))
