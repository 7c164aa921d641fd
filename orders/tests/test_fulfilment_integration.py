"""Fulfilment through the real catalog services (no monkeypatch): reusable keys, direct
top-ups through Kamen's sandbox supplier over HTTP, and voucher products."""

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group

from catalog.models import ProductType, ReusableCardKey, SandboxOrder
from catalog.models.products import RedemptionMode
from catalog.services import set_reusable_key_cap, set_reusable_key_secret
from orders.models import DeliveryKind, OrderDelivery, OrderStatus, Voucher
from orders.services import fulfil_order
from orders.services.fulfilment import order_link
from orders.services.redemption import VoucherRefused, redeem_voucher, vouchers_for_buyer

from .factories import buy, make_product, pay


def _open_as_buyer(client, order):
    parts = urlsplit(order_link(order))
    return client.get(f"{parts.path}?{parts.query}")


@pytest.mark.django_db
def test_a_reusable_key_order_receives_the_shared_secret_and_counts_against_the_cap(owner_user, client):
    # given a reusable-key product with a cap of 3
    product = make_product()
    set_reusable_key_secret(product=product, secret="https://pan.example.com/s/shared", actor=owner_user)
    set_reusable_key_cap(reusable_key=ReusableCardKey.objects.get(product=product), sales_cap=3, actor=owner_user)
    order = buy(product, quantity=2)

    # when it is paid and fulfilled (twice: the task may run again)
    pay(order)
    fulfil_order(order_id=order.pk)
    fulfil_order(order_id=order.pk)

    # then the buyer sees the shared secret, and two of the three sales are used, once
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert ReusableCardKey.objects.get(product=product).sold_count == 2
    page = _open_as_buyer(client, order)
    assert "https://pan.example.com/s/shared" in page.content.decode()


@pytest.mark.django_db
def test_a_reusable_key_order_past_the_cap_waits_instead_of_being_delivered_nothing(owner_user):
    product = make_product()
    set_reusable_key_secret(product=product, secret="SHARED-TUTORIAL", actor=owner_user)
    set_reusable_key_cap(reusable_key=ReusableCardKey.objects.get(product=product), sales_cap=1, actor=owner_user)
    first, second = buy(product, contact="a@example.com"), buy(product, contact="b@example.com")
    pay(first)
    pay(second)

    fulfil_order(order_id=first.pk)
    fulfil_order(order_id=second.pk)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == OrderStatus.COMPLETED
    assert second.status == OrderStatus.BACKORDERED
    assert not OrderDelivery.objects.filter(order=second).exists()


@pytest.mark.django_db(transaction=True)
def test_a_direct_top_up_is_sent_once_through_the_sandbox_supplier_over_http(live_server):
    from catalog.tests.suppliers_support import add_channel, make_product as make_top_up_product
    from catalog.tests.suppliers_support import make_sku, make_supplier

    # given a top-up product sourced from the sandbox supplier on the live server
    product = make_top_up_product()
    make_sku("CMCC-100", price="97.00")
    supplier, account = make_supplier("快充", base_url=f"{live_server.url}/sandbox/supplier/")
    add_channel(product, supplier, "CMCC-100", cost="97.00")
    order = buy(product, recharge_target="13800138000")

    # when the order is paid and fulfilled, twice
    pay(order)
    fulfil_order(order_id=order.pk)
    fulfil_order(order_id=order.pk)

    # then it is complete and the supplier received exactly one order for that target
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert OrderDelivery.objects.filter(order=order, kind=DeliveryKind.TOP_UP).count() == 1
    supplier_orders = SandboxOrder.objects.filter(account=account)
    assert supplier_orders.count() == 1
    assert supplier_orders.get().target == "13800138000"
    account.refresh_from_db()
    assert account.balance == Decimal("903.00")


@pytest.mark.django_db
def test_a_voucher_product_is_delivered_as_vouchers_that_redeem_once(client, django_user_model):
    # given a voucher product (staff need not deliver anything by hand)
    product = make_product(product_type=ProductType.MANUAL, redemption_mode=RedemptionMode.CODE)
    order = buy(product, quantity=2)

    # when it is paid and fulfilled
    pay(order)
    fulfil_order(order_id=order.pk)

    # then the order is complete with one voucher per unit, shown on the buyer's page
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert Voucher.objects.filter(order=order).count() == 2
    codes = [item["code"] for item in vouchers_for_buyer(order=order)]
    page = _open_as_buyer(client, order).content.decode()
    assert all(code in page for code in codes)

    # and a counter clerk redeems the first once; a second try is refused
    clerk = django_user_model.objects.create_user(username="clerk", password="x", is_staff=True)
    clerk.groups.add(Group.objects.get(name="operator"))
    redeem_voucher(code=codes[0], actor=clerk, store_label="一号店")
    with pytest.raises(VoucherRefused):
        redeem_voucher(code=codes[0], actor=clerk, store_label="二号店")
