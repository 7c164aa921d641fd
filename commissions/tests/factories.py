"""Test helpers: a distributor chain, an order attributed to it, rules."""

from datetime import timedelta
from decimal import Decimal
from itertools import count

from django.utils import timezone

from distribution.models import DistributionSettings
from distribution.tests.factories import (
    DistributorFactory,
    GradeFactory,
    ProductFactory,
    UserFactory,
)

__all__ = [
    "DistributorFactory",
    "GradeFactory",
    "ProductFactory",
    "UserFactory",
    "make_chain",
    "make_order",
    "refund",
]
from orders.models import Order, OrderStatus

_numbers = count(1)


def make_chain(levels: int = 3, *, grade=None, rates=(1000, 500, 200)):
    """Distributors root → … → seller (``levels`` deep); returns them seller first."""
    grade = grade or GradeFactory(
        commission_level1_bp=rates[0],
        commission_level2_bp=rates[1],
        commission_level3_bp=rates[2],
    )
    DistributionSettings.objects.get_or_create(pk=1)
    parent = None
    made = []
    for _level in range(levels):
        parent = DistributorFactory(parent=parent, grade=grade)
        made.append(parent)
    return list(reversed(made))


def make_order(
    seller=None,
    *,
    chain=None,
    paid="100.00",
    cost="60.00",
    product=None,
    quantity=1,
    product_type=None,
    attribution=None,
) -> Order:
    product = product or ProductFactory()
    paid = Decimal(paid)
    if seller is not None and chain is None:
        chain = [d.pk for d in _ancestors(seller)]
    snapshot = attribution or (
        {
            "distributor_id": seller.pk,
            "chain": chain or [],
            "link": "L1",
            "sub_store": None,
        }
        if seller
        else {}
    )
    return Order.objects.create(
        order_no=f"K{next(_numbers):010d}",
        status=OrderStatus.COMPLETED,
        product=product,
        product_name=product.name,
        product_type=product_type or product.product_type,
        quantity=quantity,
        unit_price=paid / quantity,
        total_amount=paid,
        paid_amount=paid,
        cost_amount=Decimal(cost),
        contact="buyer@example.com",
        contact_kind="email",
        query_password_hash="x",
        expires_at=timezone.now() + timedelta(minutes=15),
        paid_at=timezone.now(),
        completed_at=timezone.now(),
        distributor_id=seller.pk if seller else None,
        attribution=snapshot,
    )


def _ancestors(distributor):
    result = []
    node = distributor.parent
    while node is not None and len(result) < 3:
        result.append(node)
        node = node.parent
    return result


def refund(order: Order, amount) -> Order:
    """What the orders app does on a refund, then the signal's effect."""
    Order.objects.filter(pk=order.pk).update(
        refunded_amount=order.refunded_amount + Decimal(amount)
    )
    order.refresh_from_db()
    return order
