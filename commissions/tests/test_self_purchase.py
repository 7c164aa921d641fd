"""Self purchase (自购): a logged-in distributor buying through their own link is recorded at
checkout, and the merchant's self-purchase rule then decides whether they earn on it."""

from decimal import Decimal

import pytest
from django.urls import reverse

from commissions.models import Commission
from commissions.services import get_policy
from distribution.services.referrals import create_referral_link
from orders.models import Order
from orders.services import fulfil_order
from orders.tests.factories import add_keys, buy, make_product, pay

from .factories import make_chain

pytestmark = pytest.mark.django_db


@pytest.fixture
def seller_chain():
    seller, parent = make_chain(2, rates=(1000, 500, 0))
    link = create_referral_link(distributor=seller, channel="wechat")
    product = make_product(price="100.00", cost_price=Decimal("60.00"))
    add_keys(product, 3)
    return seller, parent, link, product


def _deliver(order):
    pay(order)
    fulfil_order(order_id=order.pk)
    return {c.beneficiary_id: c.amount for c in Commission.objects.filter(order=order)}


def test_a_distributor_buying_through_their_own_link_earns_nothing_by_default(seller_chain):
    seller, parent, link, product = seller_chain

    order = buy(product, referral={"code": link.code, "channel": "wechat"}, buyer_user=seller.user)
    paid_to = _deliver(order)

    assert order.attribution["buyer_distributor_id"] == seller.pk
    assert seller.pk not in paid_to
    assert paid_to[parent.pk] == Decimal("5.00")


def test_the_merchant_may_let_a_self_purchase_earn(seller_chain):
    seller, parent, link, product = seller_chain
    policy = get_policy()
    policy.self_purchase_earns = True
    policy.save()

    paid_to = _deliver(buy(product, referral={"code": link.code, "channel": "wechat"}, buyer_user=seller.user))

    assert paid_to == {seller.pk: Decimal("10.00"), parent.pk: Decimal("5.00")}


def test_a_guest_or_another_distributor_buying_is_an_ordinary_sale(seller_chain):
    seller, parent, link, product = seller_chain

    guest = buy(product, referral={"code": link.code, "channel": "wechat"})
    by_parent = buy(
        product, referral={"code": link.code, "channel": "wechat"}, buyer_user=parent.user, contact="p@example.com"
    )

    assert "buyer_distributor_id" not in guest.attribution
    assert by_parent.attribution["buyer_distributor_id"] == parent.pk
    assert seller.pk in _deliver(guest) and seller.pk in _deliver(by_parent)


def test_the_checkout_page_records_the_logged_in_distributor(client, seller_chain):
    seller, _parent, link, product = seller_chain
    client.force_login(seller.user)
    client.get(f"/?ref={link.code}&ch=wechat")
    page = client.get(reverse("catalog:product-detail", args=[product.pk])).content.decode()
    token = page.split('name="checkout_token" value="', 1)[1].split('"', 1)[0]

    response = client.post(
        reverse("orders:checkout", args=[product.pk]),
        {"checkout_token": token, "quantity": "1", "contact": "me@example.com", "query_password": "pass1234"},
    )

    assert response.status_code == 302
    order = Order.objects.get()
    assert order.distributor_id == seller.pk
    assert order.attribution["buyer_distributor_id"] == seller.pk
