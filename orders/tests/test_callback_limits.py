"""Payment callbacks are known by their signature, not their address: genuine ones are never
refused, forged ones are limited per source and leave a risk signal."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from kamen.security import DEFAULT_RATE_LIMITS, counters
from orders.models import Order, OrderStatus, PaymentCallback
from riskcontrol.models import RiskSignal, SignalKind

from .factories import add_keys, buy, make_product, sandbox_notification

pytestmark = pytest.mark.django_db

GATEWAY = "47.92.0.10"
NOTIFY = reverse("orders:payment-notify", args=["sandbox"])


@pytest.fixture(autouse=True)
def shop_limits(settings):
    settings.KAMEN_RATE_LIMITS = DEFAULT_RATE_LIMITS
    settings.KAMEN_UNVERIFIED_CALLBACKS_PER_MINUTE = 5
    cache.clear()
    counters.reset()
    yield
    cache.clear()
    counters.reset()


def _post(client, body, headers, address=GATEWAY):
    extra = {f"HTTP_{key.upper().replace('-', '_')}": value for key, value in headers.items()}
    return client.post(NOTIFY, data=body, content_type="application/json", REMOTE_ADDR=address, **extra)


def test_four_hundred_genuine_callbacks_from_one_address_in_a_minute_are_all_answered(client):
    product = make_product()
    add_keys(product, 20)
    notifications = [sandbox_notification(buy(product, contact=f"b{n}@example.com")) for n in range(20)]

    # every order notified 20 times, as a gateway retries: 400 signed posts from one address
    statuses = [_post(client, body, headers).status_code for _round in range(20) for body, headers in notifications]

    assert statuses.count(200) == 400
    assert Order.objects.filter(status=OrderStatus.PAID).count() == 20
    assert not RiskSignal.objects.filter(kind=SignalKind.CALLBACK_FORGED).exists()


def test_forged_callbacks_are_throttled_per_source_and_recorded_as_risk_signals(client):
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    body, headers = sandbox_notification(order)
    forged = dict(headers, **{"x-sandbox-signature": "0" * 64})

    statuses = [_post(client, body + b" " * n, forged, address="192.0.2.66").status_code for n in range(8)]
    other_source = _post(client, body, forged, address="192.0.2.67")
    genuine_from_the_forger = _post(client, body, headers, address="192.0.2.66")

    assert statuses == [400] * 5 + [429] * 3
    assert other_source.status_code == 400
    assert genuine_from_the_forger.status_code == 200
    signals = RiskSignal.objects.filter(kind=SignalKind.CALLBACK_FORGED)
    assert sorted(signals.values_list("ip", flat=True)) == ["192.0.2.66"] * 5 + ["192.0.2.67"]
    assert PaymentCallback.objects.filter(outcome="rejected").count() == 5  # the other source repeated one body
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_a_throttled_forgery_is_answered_with_retry_after_and_writes_nothing(client, settings):
    settings.KAMEN_UNVERIFIED_CALLBACKS_PER_MINUTE = 0
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    body, headers = sandbox_notification(order)

    response = _post(client, body, dict(headers, **{"x-sandbox-signature": "0" * 64}))

    assert response.status_code == 429 and response["Retry-After"] == "60"
    assert not PaymentCallback.objects.exists()
    assert not RiskSignal.objects.filter(kind=SignalKind.CALLBACK_FORGED).exists()


def test_buyers_behind_one_address_can_poll_their_orders_beyond_the_look_up_limit(client):
    """The order page's status polls (signed: one order's status only) are not counted against
    the address's look-up limit; the order page itself still is."""
    from orders.selectors import SESSION_KEY, order_status_url

    product = make_product()
    add_keys(product, 2)
    order = buy(product)
    session = client.session
    session[SESSION_KEY] = [order.order_no]  # the browser that placed it
    session.save()
    poll = order_status_url(order_no=order.order_no)
    office = "203.0.113.7"

    polls = [client.get(poll, REMOTE_ADDR=office).status_code for _n in range(130)]
    pages = [client.get(f"/orders/{order.order_no}/", REMOTE_ADDR=office).status_code for _n in range(121)]

    assert set(polls) == {200}
    assert pages[:120].count(429) == 0
    assert pages[-1] == 429


def test_a_forged_status_signature_is_a_404_and_counted_as_page_guessing(client):
    product = make_product()
    add_keys(product, 2)
    order = buy(product)

    response = client.get(f"/orders/{order.order_no}/status.json?s=forged", REMOTE_ADDR="203.0.113.8")

    assert response.status_code == 404
    assert RiskSignal.objects.filter(kind=SignalKind.PAGE_DENIED, ip="203.0.113.8").exists()
