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

__all__ = [
    "book_delivered_order",
    "book_paid_order",
    "paid_order_statements",
    "delivered_order_statements",
    "book_refunded_order",
    "order_money",
    "order_parts",
]

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


def paid_order_statements(order: Order, *, amount: Decimal, gateway_code: str) -> list[tuple[str, dict, str]]:
    """``book_paid_order`` as statements for the message that marks the order paid."""
    through_gateway = gateway_code not in _NOT_THROUGH_A_GATEWAY
    amount = Decimal(amount)
    return books.payment_statements(
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


def delivered_order_statements(order: Order) -> list[tuple[str, dict, str]]:
    """``book_delivered_order`` of an order with nothing refunded, as statements for the
    message that moves it to completed (PostgreSQL)."""
    return books.delivery_statements(order_id=order.pk, order_no=order.order_no, parts=order_parts(order))


def book_refunded_order(order: Order) -> None:
    """In the refund's transaction, with ``order`` carrying its new refunded total: the
    commissions reversed in proportion (the ``order_refunded`` receiver then finds nothing left
    to do), then the order's own lines brought in line."""
    reverse_commissions(order=order)
    books.book_refund(order_id=order.pk, order_no=order.order_no, money=order_money(order))


# --- what reconcile_ledger checks (registered in orders.apps) -----------------------------------
def order_books_problems(*, limit: int = 200) -> list[str]:
    """Paid orders without their payment lines; orders with delivered card keys without their
    cost and profit lines, or whose booked cost is not the keys' batch cost (card-key orders)."""
    from django.db.models import Count, DecimalField, Q, Sum
    from django.db.models.functions import Coalesce

    from commissions.models import AccountKind, JournalEntry, JournalTransaction, TransactionKind
    from orders.models import DeliveryKind, OrderDelivery

    problems = []
    paid_books = JournalTransaction.objects.filter(kind=TransactionKind.ORDER_PAYMENT).values("order_id")
    # Every payment names its way in (a gateway, 补单 "manual", the wallet); an order without
    # one was never paid through the pipeline (data written by hand, tests' fixtures).
    for order_no, paid in (
        Order.objects.filter(paid_at__isnull=False)
        .exclude(payment_gateway="")
        .exclude(payment_gateway__in=_NOT_THROUGH_A_GATEWAY)
        .exclude(pk__in=paid_books)
        .values_list("order_no", "paid_amount")[:limit]
    ):
        problems.append(f"order {order_no}: paid ¥{paid} but no payment lines in the books")
    delivered_books = JournalTransaction.objects.filter(kind=TransactionKind.ORDER_DELIVERY).values("order_id")
    key_orders = OrderDelivery.objects.filter(kind=DeliveryKind.CARD_KEY).values("order_id")
    for order_no, keys in (
        Order.objects.filter(pk__in=key_orders, completed_at__isnull=False)
        .exclude(payment_gateway="")
        .exclude(pk__in=delivered_books)
        .annotate(keys=Count("deliveries", filter=Q(deliveries__kind=DeliveryKind.CARD_KEY)))
        .values_list("order_no", "keys")[:limit]
    ):
        problems.append(f"order {order_no}: {keys} card key(s) delivered but no cost line in the books")
    money = DecimalField(max_digits=14, decimal_places=2)
    expected = dict(
        OrderDelivery.objects.filter(
            kind=DeliveryKind.CARD_KEY, order__product_type=ProductType.CARD_KEY, order__completed_at__isnull=False
        )
        .values_list("order_id")
        .annotate(cost=Sum(Coalesce("card_key__batch__unit_cost", "card_key__product__cost_price", output_field=money)))
        .values_list("order_id", "cost")
    )
    booked = dict(
        JournalEntry.objects.filter(
            transaction__kind=TransactionKind.ORDER_DELIVERY,
            transaction__order_id__in=list(expected),
            account__kind=AccountKind.SUPPLIER_COST,
            account__distributor__isnull=True,
        )
        .values_list("transaction__order_id")
        .annotate(cost=Sum("amount"))
        .values_list("transaction__order_id", "cost")
    )
    numbers = dict(Order.objects.filter(pk__in=list(expected)).values_list("pk", "order_no"))
    posted = set(
        JournalTransaction.objects.filter(kind=TransactionKind.ORDER_DELIVERY, order_id__in=list(expected)).values_list(
            "order_id", flat=True
        )
    )
    for order_id, cost in expected.items():
        if order_id in posted and booked.get(order_id, Decimal("0.00")) != (cost or Decimal("0.00")):
            problems.append(
                f"order {numbers[order_id]}: its keys' batch cost is ¥{cost} but ¥{booked.get(order_id, 0)} is booked"
            )
    return problems[:limit]
