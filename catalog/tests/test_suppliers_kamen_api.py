"""The "kamen_api" supplier adapter (issue 17 §2): Kamen buying from an upstream that speaks
Kamen's open API — here Kamen itself, served by a live server. Placing is idempotent on our
order number, an answer that is not final yet is resolved by query, prices and balance read."""

from decimal import Decimal

import pytest

from catalog.suppliers import KamenApiSupplierClient, OrderStatus, TransportTimeout
from catalog.suppliers.kamen_api import MethodTransport
from orders.models import Order
from orders.services.fulfilment import fulfil_order
from orders.tests.docking_support import docked_site, owner
from orders.tests.factories import add_keys, make_product

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def upstream(live_server, django_user_model):
    staff = owner(django_user_model)
    docked = docked_site(staff=staff, prepaid="500.00", credit_limit="20.00")
    product = make_product(price="100.00")
    add_keys(product, 3)
    client = KamenApiSupplierClient(base_url=live_server.url, app_id=docked.key.key_id, app_secret=docked.secret)
    return client, product, docked


def test_an_order_placed_twice_under_one_number_is_one_upstream_order(upstream):
    client, product, _docked = upstream

    first = client.place_order(sku=str(product.pk), target="", quantity=1, out_order_no="K-DOWN-1")
    again = client.place_order(sku=str(product.pk), target="", quantity=1, out_order_no="K-DOWN-1")

    assert first.status == OrderStatus.PENDING  # paid upstream, delivery not run yet
    assert again.supplier_order_no == first.supplier_order_no
    assert Order.objects.count() == 1


def test_a_lost_answer_is_resolved_by_query_without_a_second_purchase(upstream):
    client, product, _docked = upstream

    class LosesTheAnswer(MethodTransport):
        def __call__(self, **kwargs):
            super().__call__(**kwargs)  # the upstream receives and places the order
            raise TransportTimeout("answer lost")

    lossy = KamenApiSupplierClient(
        base_url=client.base_url, app_id=client.app_id, app_secret=client._app_secret, transport=LosesTheAnswer()
    )
    lost = lossy.place_order(sku=str(product.pk), target="", quantity=1, out_order_no="K-DOWN-2")
    fulfil_order(order_id=Order.objects.get().pk)  # the upstream's worker delivers
    found = client.query_order(out_order_no="K-DOWN-2")

    assert lost.status == OrderStatus.PENDING
    assert found.status == OrderStatus.SUCCEEDED and found.cost == Decimal("80.00")
    assert Order.objects.count() == 1


def test_an_order_the_upstream_never_saw_is_final_not_found(upstream):
    client, _product, _docked = upstream

    result = client.query_order(out_order_no="NEVER-SENT")

    assert result.status == OrderStatus.FAILED and result.is_not_found


def test_an_upstream_out_of_stock_is_out_of_stock(upstream):
    client, _product, _docked = upstream
    empty = make_product(price="1.00")

    result = client.place_order(sku=str(empty.pk), target="", quantity=1, out_order_no="K-DOWN-3")

    assert result.status == OrderStatus.OUT_OF_STOCK


def test_an_order_above_our_upstream_balance_fails_and_buys_nothing(upstream):
    client, _product, _docked = upstream
    plenty = make_product(price="100.00")
    add_keys(plenty, 10)

    result = client.place_order(sku=str(plenty.pk), target="", quantity=7, out_order_no="K-DOWN-4")  # 560 > 520

    assert result.status == OrderStatus.FAILED and result.message.startswith("insufficient_balance")
    assert Order.objects.count() == 0


def test_prices_and_balance_are_read_at_our_grade(upstream):
    client, product, _docked = upstream

    quotes = client.fetch_prices(skus=[str(product.pk), "999999"])
    balance = client.fetch_balance()

    assert quotes[str(product.pk)].price == Decimal("80.00") and quotes[str(product.pk)].is_in_stock
    assert "999999" not in quotes
    assert balance == Decimal("520.00")  # prepaid 500 + credit 20


def test_the_upstreams_price_is_synced_and_a_rise_above_our_price_pauses_the_product(upstream, django_user_model):
    from catalog.models import Product, ProductType, SupplierChannel
    from catalog.services.suppliers import create_supplier, sync_supplier

    client, product, _docked = upstream
    staff = django_user_model.objects.get(username="dock-owner")
    supplier = create_supplier(
        actor=staff,
        app_secret=client._app_secret,
        name="上游 Kamen",
        adapter="kamen_api",
        base_url=client.base_url,
        app_id=client.app_id,
    )
    docked_here = make_product(product_type=ProductType.DIRECT_RECHARGE, price="90.00")
    channel = SupplierChannel.objects.create(
        product=docked_here, supplier=supplier, supplier_sku=str(product.pk), cost=Decimal("1.00")
    )

    sync_supplier(supplier=supplier)
    channel.refresh_from_db()
    on_shelf_before = Product.objects.get(pk=docked_here.pk).is_on_shelf
    Product.objects.filter(pk=product.pk).update(retail_price=Decimal("120.00"))  # our price upstream: 96.00
    sync_supplier(supplier=supplier)
    supplier.refresh_from_db()

    assert channel.cost == Decimal("80.00") and on_shelf_before
    assert SupplierChannel.objects.get(pk=channel.pk).cost == Decimal("96.00")
    assert not Product.objects.get(pk=docked_here.pk).is_on_shelf  # never sell at a loss
    assert supplier.balance == Decimal("520.00")
