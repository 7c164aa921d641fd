"""A distributor pays a shop order from their available balance: in the cashier (the order
page) and in the portal's 余额支付 page; a short balance or a stranger changes nothing."""

from decimal import Decimal

import pytest
from django.urls import reverse

from commissions.models import AccountKind, JournalTransaction
from commissions.services.ledger import distributor_account
from commissions.tests.factories import make_chain
from commissions.tests.test_withdrawals import _fund
from distribution.models import Distributor, DistributorStatus
from orders import selectors
from orders.models import Order, OrderStatus

from .factories import add_keys, buy, make_product

pytestmark = pytest.mark.django_db


def _available(distributor) -> Decimal:
    return distributor_account(distributor.pk, AccountKind.DISTRIBUTOR_AVAILABLE).balance


@pytest.fixture
def agent():
    (seller,) = make_chain(1)
    _fund(seller, "100.00")
    return seller


@pytest.fixture
def order(agent):
    product = make_product(price="48.00")
    add_keys(product, 3)
    return buy(product, buyer_user=agent.user)


def _open_cashier(client, order):
    session = client.session
    session[selectors.SESSION_KEY] = [order.order_no]
    session.save()


def test_the_cashier_offers_the_balance_and_pays_the_order_from_it(client, agent, order):
    client.force_login(agent.user)
    _open_cashier(client, order)

    page = client.get(reverse("orders:order-detail", args=[order.order_no])).content.decode()
    client.post(reverse("orders:order-pay-wallet", args=[order.order_no]))
    client.post(reverse("orders:order-pay-wallet", args=[order.order_no]))

    assert "余额支付（可用 ¥100.00）" in page
    assert Order.objects.get(pk=order.pk).status in (
        OrderStatus.PAID,
        OrderStatus.FULFILLING,
        OrderStatus.COMPLETED,
    )
    assert _available(agent) == Decimal("52.00")
    assert JournalTransaction.objects.filter(reference=f"wallet:{order.order_no}").count() == 1


def test_a_balance_short_of_the_order_says_so_and_changes_nothing(client, agent):
    product = make_product(price="148.00")
    add_keys(product, 1)
    big = buy(product, buyer_user=agent.user)
    client.force_login(agent.user)
    _open_cashier(client, big)

    response = client.post(reverse("orders:order-pay-wallet", args=[big.order_no]), follow=True)

    assert "可用余额不足（当前 ¥100.00）" in response.content.decode()
    assert Order.objects.get(pk=big.pk).status == OrderStatus.PENDING_PAYMENT
    assert _available(agent) == Decimal("100.00")
    assert not JournalTransaction.objects.filter(reference=f"wallet:{big.order_no}").exists()


def test_a_guest_sees_no_balance_button_and_cannot_pay_with_one(client, order):
    _open_cashier(client, order)

    page = client.get(reverse("orders:order-detail", args=[order.order_no])).content.decode()
    client.post(reverse("orders:order-pay-wallet", args=[order.order_no]))

    assert 'data-testid="pay-wallet"' not in page
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


def test_a_frozen_distributor_cannot_spend_the_balance(client, agent, order):
    Distributor.objects.filter(pk=agent.pk).update(status=DistributorStatus.FROZEN)
    client.force_login(agent.user)
    _open_cashier(client, order)

    client.post(reverse("orders:order-pay-wallet", args=[order.order_no]))

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert _available(agent) == Decimal("100.00")


def test_the_portal_lists_my_unpaid_orders_and_pays_one(client, agent, order):
    (stranger,) = make_chain(1)
    product = make_product(price="5.00")
    add_keys(product, 1)
    theirs = buy(product, buyer_user=stranger.user)
    client.force_login(agent.user)

    page = client.get(reverse("orders:agent-wallet-pay")).content.decode()
    paid = client.post(reverse("orders:agent-wallet-pay-order", args=[order.order_no]))
    foreign = client.post(reverse("orders:agent-wallet-pay-order", args=[theirs.order_no]))

    assert order.order_no in page and theirs.order_no not in page
    assert paid.status_code == 302
    assert Order.objects.get(pk=order.pk).paid_at is not None
    assert foreign.status_code == 404
    assert Order.objects.get(pk=theirs.pk).status == OrderStatus.PENDING_PAYMENT
    assert _available(agent) == Decimal("52.00")


def test_the_portal_page_needs_a_distributor(client, django_user_model):
    user = django_user_model.objects.create_user(username="plain", password="x")

    anonymous = client.get(reverse("orders:agent-wallet-pay"))
    client.force_login(user)
    stranger = client.get(reverse("orders:agent-wallet-pay"))

    assert anonymous.status_code == 302 and "/agent/login/" in anonymous["Location"]
    assert stranger.status_code == 403


def test_a_distributor_without_the_orders_grant_gets_404_and_pays_nothing(client, order):
    (other,) = make_chain(1)
    _fund(other, "100.00")
    client.force_login(other.user)

    response = client.post(reverse("orders:order-pay-wallet", args=[order.order_no]))

    assert response.status_code == 404
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert _available(other) == Decimal("100.00")
