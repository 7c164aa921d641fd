"""Behind a trusted reverse proxy every buyer keeps their own address — to the rate limiter, the
risk engine, the order, the audit log and the callback record — and a buyer who writes the
header themselves changes nothing."""

import re

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from kamen.models import AuditLogEntry
from kamen.security import counters
from orders.gateways.sandbox import signed_body
from orders.models import Order, PaymentCallback
from riskcontrol.models import Action, ReviewCase, RiskEvent, RiskRule, RuleCode

from .factories import add_keys, buy, make_product, sandbox_notification

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.5"
ALICE, BOB = "203.0.113.7", "198.51.100.23"
CHECKOUTS_PER_MINUTE = 3


@pytest.fixture(autouse=True)
def behind_a_proxy(settings):
    settings.KAMEN_TRUSTED_PROXIES = ["10.0.0.0/24"]
    settings.KAMEN_RATE_LIMITS = [("checkout", r"^/buy/\d+/$", ("POST",), CHECKOUTS_PER_MINUTE, 60)]
    cache.clear()
    counters.reset()
    RiskRule.objects.update_or_create(
        code=RuleCode.IP_VELOCITY, defaults={"threshold": 3, "window_minutes": 10, "action": Action.REVIEW}
    )
    RiskRule.objects.update_or_create(code=RuleCode.DEVICE_VELOCITY, defaults={"is_enabled": False})
    yield
    cache.clear()
    counters.reset()


def _checkout(client, product, contact, **meta):
    page = client.get(reverse("catalog:product-detail", args=[product.pk]), **meta)
    token = re.search(r'name="checkout_token" value="([^"]+)"', page.content.decode()).group(1)
    data = {"checkout_token": token, "quantity": "1", "contact": contact, "query_password": "pass1234"}
    return client.post(reverse("orders:checkout", args=[product.pk]), data, **meta)


def _through_proxy(buyer):
    # nginx's $proxy_add_x_forwarded_for: what the buyer sent, then the address it saw.
    return {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": f"6.6.6.6, {buyer}"}


def test_behind_the_proxy_two_buyers_are_two_buyers_to_the_rate_limiter_and_the_risk_engine():
    product = make_product()
    add_keys(product, 10)
    alice, bob = Client(), Client()

    statuses = []
    for number in range(CHECKOUTS_PER_MINUTE):
        statuses.append(_checkout(alice, product, f"alice{number}@example.com", **_through_proxy(ALICE)).status_code)
        statuses.append(_checkout(bob, product, f"bob{number}@example.com", **_through_proxy(BOB)).status_code)

    assert statuses == [302] * 2 * CHECKOUTS_PER_MINUTE
    assert sorted(Order.objects.values_list("buyer_ip", flat=True)) == sorted([ALICE, BOB] * CHECKOUTS_PER_MINUTE)
    assert not RiskEvent.objects.filter(rule=RuleCode.IP_VELOCITY).exists()
    assert not ReviewCase.objects.exists()
    # …and each of them is still one buyer: the next checkout is over the limit.
    assert _checkout(alice, product, "alice9@example.com", **_through_proxy(ALICE)).status_code == 429


def test_behind_the_proxy_the_risk_engine_holds_no_order_for_sharing_the_proxys_address(settings):
    settings.KAMEN_RATE_LIMITS = []
    product = make_product()
    add_keys(product, 10)
    buyers = [(Client(), f"198.51.100.{number}") for number in range(1, 7)]

    statuses = [
        _checkout(client, product, f"b{number}@example.com", **_through_proxy(address)).status_code
        for number, (client, address) in enumerate(buyers)
    ]

    assert statuses == [302] * 6
    assert not RiskEvent.objects.filter(rule=RuleCode.IP_VELOCITY).exists()
    assert not [order for order in Order.objects.all() if (order.attribution or {}).get("risk")]


def test_a_buyer_writing_x_forwarded_for_straight_to_kamen_changes_nothing(settings):
    settings.KAMEN_TRUSTED_PROXIES = []
    product = make_product()
    add_keys(product, 10)
    client = Client()

    statuses = [
        _checkout(
            client, product, f"c{number}@example.com", REMOTE_ADDR=ALICE, HTTP_X_FORWARDED_FOR=f"192.0.2.{number}"
        ).status_code
        for number in range(CHECKOUTS_PER_MINUTE + 1)
    ]

    assert statuses == [302] * CHECKOUTS_PER_MINUTE + [429]
    assert set(Order.objects.values_list("buyer_ip", flat=True)) == {ALICE}


def test_the_audit_log_records_the_address_behind_the_proxy(client, staff_user):
    client.post(
        reverse("admin:login"), {"username": "operator", "password": "kamen-test-pass"}, **_through_proxy(ALICE)
    )

    assert AuditLogEntry.objects.get(action="auth.login").ip_address == ALICE


def test_the_callback_record_keeps_the_gateways_address_behind_the_proxy(client):
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    body, headers = sandbox_notification(order)
    gateway_address = "47.92.0.10"
    extra = {f"HTTP_{key.upper().replace('-', '_')}": value for key, value in headers.items()}

    response = client.post(
        reverse("orders:payment-notify", args=["sandbox"]),
        data=body,
        content_type="application/json",
        **extra,
        **_through_proxy(gateway_address),
    )
    forged, _headers = signed_body({"out_trade_no": order.order_no})
    refused = client.post(
        reverse("orders:payment-notify", args=["sandbox"]),
        data=forged,
        content_type="application/json",
        HTTP_X_SANDBOX_SIGNATURE="0" * 64,
        **_through_proxy(ALICE),
    )

    assert response.status_code == 200 and refused.status_code == 400
    assert PaymentCallback.objects.get(outcome="paid").source_ip == gateway_address
    assert PaymentCallback.objects.get(outcome="rejected").source_ip == ALICE
