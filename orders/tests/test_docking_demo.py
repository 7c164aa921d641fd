"""The demo's docking (issue 17 §2, §4): `make run` shows products docked from a sandbox
upstream served by Kamen itself. The loader stays idempotent, and a buyer's order for a docked
product is bought from this site's own open API over HTTP and delivered."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from catalog.models import CardKey, Product, Supplier, SupplierChannel
from commissions.services.prepaid import prepaid_balance
from distribution.docking.models import DockingSite
from kamen import crypto
from orders.api.models import DockingOrder
from orders.demo import DOCKING_SUPPLIER, DOCKING_USERNAME
from orders.models import OrderStatus
from orders.selectors import deliveries_for_buyer
from orders.services import FulfilmentPending, fulfil_order

from .factories import buy, pay

pytestmark = pytest.mark.django_db(transaction=True)


def _load_demo():
    call_command("load_demo_data", stdout=io.StringIO())


def _docked(name: str) -> Product:
    return Product.objects.get(name=name)


def test_the_demo_docks_two_products_from_itself_once(live_server, settings):
    settings.SITE_URL = live_server.url

    _load_demo()
    _load_demo()

    site = DockingSite.objects.get(distributor__user__username=DOCKING_USERNAME)
    supplier = Supplier.objects.get(name=DOCKING_SUPPLIER)
    assert supplier.adapter == "kamen_api" and supplier.base_url == "/"  # this site, wherever it runs
    docked = Product.objects.filter(is_sourced_upstream=True).order_by("id")
    assert [product.name for product in docked] == [
        "Steam 钱包充值卡 50 元（对接上游）",
        "中国移动话费直充 100 元（对接上游）",
    ]
    assert all(product.is_on_shelf for product in docked)
    assert SupplierChannel.objects.filter(supplier=supplier).count() == 2
    assert prepaid_balance(site.distributor_id) == 5000  # topped up once
    steam = _docked("Steam 钱包充值卡 50 元（对接上游）")
    channel = SupplierChannel.objects.get(product=steam)
    assert steam.retail_price == (channel.cost * Decimal("1.6")).to_integral_value(rounding="ROUND_CEILING")


def test_a_buyer_of_a_docked_demo_product_gets_a_key_bought_from_this_sites_own_api(live_server, settings):
    settings.SITE_URL = live_server.url
    _load_demo()
    docked = _docked("Steam 钱包充值卡 50 元（对接上游）")
    source = Product.objects.get(name="Steam 钱包充值卡 50 元")
    order = buy(docked)
    pay(order)

    with pytest.raises(FulfilmentPending):  # bought upstream (here), not delivered there yet
        fulfil_order(order_id=order.pk)
    (upstream,) = DockingOrder.objects.select_related("order").filter(client_order_no__startswith=order.order_no)
    fulfil_order(order_id=upstream.order_id)  # the "upstream's" worker
    fulfil_order(order_id=order.pk)  # ours, asked again

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    (secret,) = [item["secret"] for item in deliveries_for_buyer(order=order)]
    sold_upstream = CardKey.objects.get(product=source, sold_to=upstream.order.order_no)
    assert secret == crypto.decrypt(key_id=sold_upstream.key_id, blob=bytes(sold_upstream.secret_ciphertext))
