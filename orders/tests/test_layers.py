"""What the apps below orders receive from it instead of importing it: distribution's notion
of a sold order names statuses orders defines, and distribution reads sales from the Order
model orders registered."""

from distribution.selectors import _order_model, sold_statuses
from orders.models import Order, OrderStatus


def test_the_statuses_distribution_counts_as_sold_are_order_statuses():
    assert set(sold_statuses()) <= set(OrderStatus.values)
    assert OrderStatus.PAID in sold_statuses() and OrderStatus.REFUNDED not in sold_statuses()


def test_distribution_reads_sales_from_the_order_model_orders_registered():
    assert _order_model() is Order
