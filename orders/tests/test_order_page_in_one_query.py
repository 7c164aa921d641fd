"""The order page reads its order in one statement, and gets what the ORM gave it (issue 15 §2,
ADR 0014): the order and product, its deliveries in order with their keys and products."""

from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.models import Prefetch
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.models import DeliveryKind, Order, OrderDelivery
from orders.selectors import SESSION_KEY, deliveries_for_buyer, order_for_buyer, order_status_summary
from orders.services import fulfil_order

from .factories import add_keys, buy, make_product, pay


def _fields(instance):
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def _as_the_orm_reads_it(order_no):
    deliveries = OrderDelivery.objects.select_related("card_key", "product").order_by("id")
    return (
        Order.objects.select_related("product")
        .prefetch_related(Prefetch("deliveries", queryset=deliveries))
        .get(order_no=order_no)
    )


def _browser_that_placed(order):
    return SimpleNamespace(session={SESSION_KEY: [order.order_no]}, GET={})


@pytest.mark.django_db
def test_the_order_page_reads_in_one_query_what_the_orm_would_read():
    # given a completed order of two keys, one delivery voided, and a delivery without a key
    product = make_product()
    add_keys(product, 2, prefix="PAGE")
    order = buy(product, quantity=2)
    pay(order)
    fulfil_order(order_id=order.pk)
    first = OrderDelivery.objects.filter(order=order).order_by("id").first()
    OrderDelivery.objects.filter(pk=first.pk).update(is_voided=True)
    OrderDelivery.objects.create(order=order, product=product, kind=DeliveryKind.MANUAL, message="补发说明")

    # when its page reads it for the browser that placed it
    with CaptureQueriesContext(connection) as queries:
        read = order_for_buyer(request=_browser_that_placed(order), order_no=order.order_no)
        shown = deliveries_for_buyer(order=read)
        summary = order_status_summary(order=read)
        keys = [delivery.card_key and _fields(delivery.card_key) for delivery in read.deliveries.all()]
        products = [_fields(delivery.product) for delivery in read.deliveries.all()]

    # then one query, and the same rows as the ORM's, in the same order
    assert len(queries) == 1
    orm = _as_the_orm_reads_it(order.order_no)
    assert _fields(read) == _fields(orm)
    assert _fields(read.product) == _fields(orm.product)
    assert [_fields(d) for d in read.deliveries.all()] == [_fields(d) for d in orm.deliveries.all()]
    assert keys == [delivery.card_key and _fields(delivery.card_key) for delivery in orm.deliveries.all()]
    assert keys[-1] is None and isinstance(keys[0], dict)
    assert products == [_fields(delivery.product) for delivery in orm.deliveries.all()]
    assert shown == deliveries_for_buyer(order=orm)
    assert [item["secret"][:5] for item in shown] == ["PAGE-", ""]
    assert summary == order_status_summary(order=orm) and summary["delivered"] == 2


@pytest.mark.django_db
def test_an_order_without_deliveries_and_an_unknown_number():
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    browser = _browser_that_placed(order)

    read = order_for_buyer(request=browser, order_no=order.order_no)
    assert list(read.deliveries.all()) == [] and read.product.pk == order.product_id
    assert order_for_buyer(request=SimpleNamespace(session={SESSION_KEY: ["K1"]}, GET={}), order_no="K1") is None
    assert order_for_buyer(request=SimpleNamespace(session={}, GET={}), order_no=order.order_no) is None


def _page_queries(client, order):
    session = client.session
    session[SESSION_KEY] = [order.order_no]
    session.save()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("orders:order-detail", args=[order.order_no]))
    assert response.status_code == 200
    return response, [query["sql"] for query in queries]


@pytest.mark.django_db
def test_a_completed_order_page_asks_for_vouchers_only_when_the_order_has_some(client):
    from django.utils import timezone

    from catalog.models import ProductType
    from catalog.models.products import RedemptionMode
    from orders.services.redemption import issue_vouchers, voucher_code

    from . import postsale_helpers

    # given a completed order of keys (no vouchers) and a completed order of two vouchers
    product = make_product()
    add_keys(product, 1, prefix="PLAIN")
    plain = buy(product)
    pay(plain)
    fulfil_order(order_id=plain.pk)
    coffee = postsale_helpers.make_product(
        name="门店咖啡券", redemption_mode=RedemptionMode.CODE, product_type=ProductType.MANUAL
    )
    with_vouchers = postsale_helpers.make_order(product=coffee, quantity=2)
    Order.objects.filter(pk=with_vouchers.pk).update(completed_at=timezone.now())
    vouchers = issue_vouchers(order=with_vouchers)

    # when each buyer opens their order page
    plain_page, plain_queries = _page_queries(client, plain)
    voucher_page, voucher_queries = _page_queries(client, with_vouchers)

    # then the plain order's page asked for no vouchers, and the other shows both of its codes
    assert 'data-testid="secret"' in plain_page.content.decode()
    assert not [sql for sql in plain_queries if sql.startswith('SELECT "orders_voucher"')]
    assert [sql for sql in voucher_queries if sql.startswith('SELECT "orders_voucher"')]
    text = voucher_page.content.decode()
    assert 'data-testid="vouchers"' in text
    assert all(voucher_code(voucher) in text for voucher in vouchers)
