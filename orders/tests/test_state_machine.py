from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.models import Category, Product, ProductType
from orders.models import Order, OrderStatus, OrderStatusChange
from orders.services import ALLOWED_TRANSITIONS, IllegalTransition, transition_order


def make_order() -> Order:
    category, _ = Category.objects.get_or_create(slug="games", defaults={"name": "游戏"})
    product, _ = Product.objects.get_or_create(
        name="Steam 50",
        defaults={"category": category, "product_type": ProductType.CARD_KEY, "retail_price": Decimal("48.00")},
    )
    return Order.objects.create(
        order_no=f"K{Order.objects.count() + 1:08d}",
        product=product,
        product_name=product.name,
        product_type=product.product_type,
        quantity=1,
        unit_price=Decimal("48.00"),
        total_amount=Decimal("48.00"),
        paid_amount=Decimal("48.00"),
        contact="buyer@example.com",
        contact_kind="email",
        query_password_hash="x",
        expires_at=timezone.now() + timedelta(minutes=15),
    )


@pytest.mark.django_db
def test_a_legal_transition_moves_the_order_and_records_why():
    order = make_order()

    transition_order(order=order, to_status=OrderStatus.PAID, cause="sandbox notify")

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert order.paid_at is not None
    change = OrderStatusChange.objects.get(order=order)
    assert (change.old_status, change.new_status, change.cause) == ("pending_payment", "paid", "sandbox notify")


@pytest.mark.django_db
def test_an_illegal_transition_raises_and_changes_nothing():
    order = make_order()

    with pytest.raises(IllegalTransition, match="pending_payment → completed"):
        transition_order(order=order, to_status=OrderStatus.COMPLETED, cause="skip ahead")

    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert not OrderStatusChange.objects.filter(order=order).exists()


@pytest.mark.django_db
def test_an_unknown_status_is_refused():
    order = make_order()

    with pytest.raises(IllegalTransition):
        transition_order(order=order, to_status="shipped", cause="typo")

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.django_db
@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(OrderStatus.values), max_size=12))
def test_any_sequence_of_requests_follows_the_table_and_history_matches(requests):
    order = make_order()
    expected = [OrderStatus.PENDING_PAYMENT.value]

    for wanted in requests:
        if wanted in ALLOWED_TRANSITIONS[expected[-1]]:
            transition_order(order=order, to_status=wanted, cause="property")
            expected.append(wanted)
        else:
            with pytest.raises(IllegalTransition):
                transition_order(order=order, to_status=wanted, cause="property")

    history = list(OrderStatusChange.objects.filter(order=order).values_list("old_status", "new_status"))
    assert history == list(zip(expected, expected[1:]))
    assert Order.objects.get(pk=order.pk).status == expected[-1]


@pytest.mark.django_db
def test_a_caller_holding_the_lock_moves_the_order_and_sets_fields_in_one_write():
    from django.db import transaction

    order = make_order()

    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        transition_order(
            order=locked, to_status=OrderStatus.PAID, cause="notify", order_is_locked=True, also_set={"payment_gateway": "sandbox"}
        )

    order.refresh_from_db()
    assert (order.status, order.payment_gateway) == (OrderStatus.PAID, "sandbox")
    assert OrderStatusChange.objects.filter(order=order, new_status=OrderStatus.PAID).count() == 1
