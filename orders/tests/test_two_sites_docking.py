"""Two Kamen instances, two databases, two live servers (issue 17 §4): this test's site docks
an upstream Kamen running as its own gunicorn on its own database (orders/tests/two_sites.py).
A buyer pays here → we buy from the upstream over signed HTTP → the keys reach the buyer; the
upstream stopped mid-order → the order resolved by query once it is back, bought once."""

import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import Category, SupplierChannel
from catalog.services.suppliers import create_supplier
from catalog.services.upstream import import_upstream_products, parse_markup
from catalog.suppliers import TransportTimeout, kamen_api
from orders.models import Order, OrderStatus
from orders.selectors import deliveries_for_buyer
from orders.services import FulfilmentPending, fulfil_order, retry_upstream_backorders

from .docking_support import owner
from .factories import buy, make_product, sandbox_notification
from .two_sites import UpstreamSite

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def upstream_site(tmp_path):
    site = UpstreamSite(tmp_path)
    site.create_database()
    try:
        site.start()
        yield site
    finally:
        site.close()


@pytest.fixture
def docked(upstream_site, django_user_model):
    """The upstream seeded (its docking site for us, our key, a product with keys); here, the
    upstream as a supplier and its product imported at a 10 % markup."""
    seeded = upstream_site.run("seed")
    staff = owner(django_user_model)
    supplier = create_supplier(
        actor=staff,
        app_secret=seeded["secret"],
        name="上游 Kamen",
        adapter="kamen_api",
        base_url=upstream_site.url,
        app_id=seeded["key_id"],
    )
    make_product()  # the shop's category
    (product,) = import_upstream_products(
        supplier=supplier,
        skus=[str(seeded["product_id"])],
        markup=parse_markup(kind="percent", value="10", rounding="yuan"),
        category=Category.objects.get(slug="cards"),
        actor=staff,
    )
    return product, seeded


def _buyer_pays(live_server, product, quantity: int) -> Order:
    """Checkout here, and the payment gateway's notification to our live server."""
    order = buy(product, quantity=quantity)
    body, headers = sandbox_notification(order)
    request = urllib.request.Request(  # noqa: S310 — our live server
        f"{live_server.url}/pay/notify/sandbox/", data=body, headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 — our live server
        assert response.status == 200
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    return order


def test_a_buyer_pays_here_we_buy_upstream_over_http_and_the_keys_reach_the_buyer(live_server, upstream_site, docked):
    product, seeded = docked
    assert product.retail_price == 88  # the upstream's 80.00 for our grade, +10 %, to the yuan

    order = _buyer_pays(live_server, product, quantity=2)
    fulfil_order(order_id=order.pk)  # our worker

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    secrets = [item["secret"] for item in deliveries_for_buyer(order=order)]
    assert len(secrets) == 2 and set(secrets) <= set(seeded["secrets"])
    assert list(upstream_site.docking_orders().values()) == [OrderStatus.COMPLETED]


def test_the_upstream_stopped_mid_order_is_asked_once_back_and_sells_once(
    live_server, upstream_site, docked, monkeypatch
):
    product, seeded = docked
    placed = []

    class StopsTheUpstreamAfterItsPlacement(kamen_api.MethodTransport):
        def __call__(self, **request):
            response = super().__call__(**request)
            if request["method"] == "POST":
                placed.append(request["url"])
                upstream_site.stop()  # it took the order; its answer is lost with it
                raise TransportTimeout("the upstream went away")
            return response

    monkeypatch.setattr(kamen_api, "MethodTransport", StopsTheUpstreamAfterItsPlacement)
    order = _buyer_pays(live_server, product, quantity=1)

    with pytest.raises(FulfilmentPending):
        fulfil_order(order_id=order.pk)
    waiting = Order.objects.get(pk=order.pk).status
    upstream_site.start()
    fulfil_order(order_id=order.pk)  # the task's retry

    assert waiting == OrderStatus.FULFILLING
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert len(placed) == 1  # asked about, never placed again
    assert list(upstream_site.docking_orders().values()) == [OrderStatus.COMPLETED]
    (secret,) = [item["secret"] for item in deliveries_for_buyer(order=order)]
    assert secret in seeded["secrets"]


def test_an_order_paid_while_the_upstream_is_down_waits_and_is_delivered_when_it_returns(
    live_server, upstream_site, docked
):
    product, _seeded = docked
    upstream_site.stop()
    order = _buyer_pays(live_server, product, quantity=1)

    fulfil_order(order_id=order.pk)
    backordered = Order.objects.get(pk=order.pk).status
    upstream_site.start()
    retry_upstream_backorders(now=timezone.now() + timedelta(minutes=5))  # the sweeper's next round

    assert backordered == OrderStatus.BACKORDERED
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert list(upstream_site.docking_orders().values()) == [OrderStatus.COMPLETED]
    assert SupplierChannel.objects.get(product=product).attempts.count() == 2  # refused, then bought
