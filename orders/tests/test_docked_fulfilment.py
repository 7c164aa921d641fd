"""A paid shop order for a docked product (issue 17 §2): bought from the upstream Kamen under
our order number, the keys stored encrypted in our vault and delivered the normal way; a lost
answer resolved by query, never by a second purchase; failover to the next channel, else a
back-order tried again until the upstream serves it. The upstream here is a fake that counts
what it sold (orders/tests/fake_upstream.py); the two-instance test runs a real one."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from catalog.models import CardKey, ProductType, SupplierChannel
from catalog.services import send_top_up
from catalog.services.suppliers import create_supplier
from catalog.suppliers import kamen_api
from commissions.book_selectors import order_books
from kamen import crypto
from orders.models import DeliveryKind, Order, OrderDelivery, OrderStatus
from orders.selectors import deliveries_for_buyer
from orders.services import FulfilmentPending, fulfil_order, retry_upstream_backorders

from .factories import buy, make_product, pay
from .fake_upstream import FakeUpstream, Upstreams

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def upstreams(monkeypatch):
    first, second = FakeUpstream(price=D("8.00")), FakeUpstream(price=D("8.50"))
    router = Upstreams(up1=first, up2=second)
    monkeypatch.setattr(kamen_api, "MethodTransport", lambda: router)
    return first, second


def _channel(product, name: str, *, priority: int, cost: str) -> SupplierChannel:
    supplier = create_supplier(
        actor=None,
        app_secret="upstream-secret-123",
        name=f"上游 {name}",
        adapter="kamen_api",
        base_url=f"http://{name}.test/",
        app_id=f"key-{name}",
    )
    return SupplierChannel.objects.create(
        product=product, supplier=supplier, supplier_sku="7", cost=D(cost), priority=priority
    )


def _docked(*, with_second_channel=False, product_type=ProductType.CARD_KEY, **fields):
    product = make_product(
        price="10.00", product_type=product_type, cost_price=D("8.00"), is_sourced_upstream=True, **fields
    )
    _channel(product, "up1", priority=1, cost="8.00")
    if with_second_channel:
        _channel(product, "up2", priority=2, cost="8.50")
    return product


def _paid(product, *, quantity=1, **extra) -> Order:
    order = buy(product, quantity=quantity, **extra)  # no local keys held: none exist
    pay(order)
    return order


def _posts(upstream: FakeUpstream) -> int:
    return sum(1 for method, _path in upstream.requests if method == "POST")


def test_a_paid_order_buys_its_keys_upstream_stores_them_encrypted_and_delivers_them(upstreams):
    first, _second = upstreams
    first.charged = D("10.00")  # for three keys: the upstream's price does not split evenly
    product = _docked()
    order = _paid(product, quantity=3)

    fulfil_order(order_id=order.pk)
    fulfil_order(order_id=order.pk)  # a repeated task

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert first.purchases == 1 and _posts(first) == 1
    (bought,) = first.orders.values()
    assert bought["client_order_no"].startswith(order.order_no)  # idempotent on our number
    shown = [(item["card_no"], item["secret"]) for item in deliveries_for_buyer(order=order)]
    assert sorted(shown) == sorted((good["card_no"], good["secret"]) for good in bought["goods"])
    stored = list(CardKey.objects.filter(product=product))
    assert len(stored) == 3 and {key.sold_to for key in stored} == {order.order_no}
    for key in stored:  # encrypted at rest
        secret = crypto.decrypt(key_id=key.key_id, blob=bytes(key.secret_ciphertext))
        assert secret.startswith("SECRET-") and secret.encode() not in bytes(key.secret_ciphertext)
    assert order_books(order_id=order.pk).cost == D("10.00")  # the upstream's charge, to the fen


def test_a_lost_answer_is_resolved_by_query_and_never_bought_twice(upstreams):
    first, second = upstreams
    product = _docked(with_second_channel=True)
    order = _paid(product, quantity=2)
    first.delivers_at_once = False
    first.loses_next_answer = True  # it takes the order, its answer never arrives

    with pytest.raises(FulfilmentPending):
        fulfil_order(order_id=order.pk)
    first.is_down = True  # and then it goes away for a while
    with pytest.raises(FulfilmentPending):
        fulfil_order(order_id=order.pk)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.FULFILLING
    first.is_down = False
    first.deliver_all()
    fulfil_order(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert _posts(first) == 1 and first.purchases == 1  # asked, never placed again
    assert second.purchases == 0  # an answer owed is never bought elsewhere
    assert OrderDelivery.objects.filter(order=order, kind=DeliveryKind.CARD_KEY).count() == 2
    assert order_books(order_id=order.pk).cost == D("16.00")


@pytest.mark.parametrize("trouble", ["is_down", "is_out_of_stock", "is_balance_short"])
def test_an_upstream_that_cannot_serve_fails_over_to_the_next_channel(upstreams, trouble):
    first, second = upstreams
    setattr(first, trouble, True)
    product = _docked(with_second_channel=True)
    order = _paid(product)

    fulfil_order(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert first.purchases == 0 and second.purchases == 1
    assert order_books(order_id=order.pk).cost == D("8.50")  # what the second channel charged


@pytest.mark.parametrize("trouble", ["is_down", "is_out_of_stock", "is_balance_short"])
def test_with_no_channel_left_the_order_is_back_ordered_then_delivered_when_the_upstream_returns(upstreams, trouble):
    first, _second = upstreams
    setattr(first, trouble, True)
    product = _docked()
    order = _paid(product)

    fulfil_order(order_id=order.pk)
    backordered = Order.objects.get(pk=order.pk)
    early = retry_upstream_backorders()  # too soon after the last try: left alone
    setattr(first, trouble, False)
    later = retry_upstream_backorders(now=timezone.now() + timedelta(minutes=5))

    assert backordered.status == OrderStatus.BACKORDERED and backordered.last_fulfilment_error
    assert early == 0 and later == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert first.purchases == 1
    assert len(deliveries_for_buyer(order=order)) == 1


def test_a_back_order_still_refused_stays_back_ordered_and_is_tried_again_later(upstreams):
    first, _second = upstreams
    first.is_out_of_stock = True
    product = _docked()
    order = _paid(product)
    fulfil_order(order_id=order.pk)

    retry_upstream_backorders(now=timezone.now() + timedelta(minutes=5))
    retry_upstream_backorders(now=timezone.now() + timedelta(minutes=10))

    assert Order.objects.get(pk=order.pk).status == OrderStatus.BACKORDERED
    assert _posts(first) == 3 and first.purchases == 0  # asked each round, nothing bought


def test_a_docked_top_up_is_forwarded_upstream_and_its_charge_is_the_cost(upstreams):
    first, _second = upstreams
    product = _docked(product_type=ProductType.DIRECT_RECHARGE, recharge_target_rule="mobile")
    order = _paid(product, recharge_target="13800138000")

    fulfil_order(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    (bought,) = first.orders.values()
    assert first.purchases == 1 and bought["client_order_no"].startswith(order.order_no)
    assert OrderDelivery.objects.filter(order=order, kind=DeliveryKind.TOP_UP).count() == 1
    assert order_books(order_id=order.pk).cost == D("8.00")


def test_card_keys_are_bought_upstream_only_for_a_docked_product(upstreams):
    first, _second = upstreams
    local = make_product(price="10.00")
    _channel(local, "up1", priority=1, cost="8.00")

    with pytest.raises(ValidationError):
        send_top_up(product=local, reference="K-LOCAL-1", target="", quantity=1)

    assert first.requests == []
