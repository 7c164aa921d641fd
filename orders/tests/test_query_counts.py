"""Queries per pipeline stage, pinned so they cannot creep up unnoticed."""

import pytest

from orders.services import fulfil_order, place_order, record_payment_notification

from .factories import add_keys, buy, make_product, sandbox_notification


@pytest.mark.django_db
def test_queries_per_stage(django_assert_max_num_queries):
    product = make_product()
    add_keys(product, 5)
    buy(product, contact="warm@example.com")  # warm caches (content types, permissions)

    with django_assert_max_num_queries(12):
        order = place_order(product=product, quantity=2, contact="a@example.com", query_password="pass1234")

    body, headers = sandbox_notification(order)
    with django_assert_max_num_queries(9):
        result = record_payment_notification(gateway_code="sandbox", body=body, headers=headers)
    assert result.accepted

    with django_assert_max_num_queries(18):
        fulfil_order(order_id=order.pk)

    with django_assert_max_num_queries(5):
        record_payment_notification(gateway_code="sandbox", body=body, headers=headers)
