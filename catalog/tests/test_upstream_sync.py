"""Docked products kept in step with their upstream (issue 17 §2): the webhook receiver (signed,
replay-proof, once per event id), what each event does to the product, the shop's stock, and
the bad bodies that change nothing."""

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.urls import reverse

from catalog.models import (
    Category,
    Product,
    ProductType,
    Supplier,
    SupplierAdapter,
    SupplierAlert,
    SupplierChannel,
    SupplierPriceChange,
    UpstreamWebhookReceipt,
)
from catalog.selectors import product_stock_state
from catalog.services.suppliers import create_supplier
from catalog.services.upstream_sync import set_upstream_webhook_secret
from kamen import api_signing

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "webhook-secret-from-the-upstream-0123456789"


@pytest.fixture
def docked(django_user_model):
    """An upstream Kamen supplier with its webhook secret, and a card-key product docked from
    its product 41 at a 10 % markup rounded up to the yuan (cost 80.00, price 88.00)."""
    owner = django_user_model.objects.create_user(username="owner", email="owner@example.com", is_staff=True)
    owner.groups.add(Group.objects.get(name="owner"))
    supplier = create_supplier(
        actor=None,
        app_secret="upstream-api-secret-0123",
        name="上游 Kamen",
        adapter=SupplierAdapter.KAMEN_API,
        base_url="http://127.0.0.1:9/",
        app_id="ak_test",
    )
    set_upstream_webhook_secret(supplier=supplier, secret=WEBHOOK_SECRET)
    category, _ = Category.objects.get_or_create(slug="cards", defaults={"name": "点卡"})
    product = Product.objects.create(
        category=category,
        name="上游点卡",
        product_type=ProductType.CARD_KEY,
        retail_price=Decimal("88.00"),
        cost_price=Decimal("80.00"),
        is_on_shelf=True,
        upstream_stock=7,
    )
    SupplierChannel.objects.create(
        product=product,
        supplier=supplier,
        supplier_sku="41",
        cost=Decimal("80.00"),
        upstream_stock=7,
        markup_kind="percent",
        markup_value=Decimal("10"),
        markup_rounding="yuan",
    )
    return supplier, product


def _url(supplier) -> str:
    return reverse("distribution:upstream-webhook", kwargs={"supplier_pk": supplier.pk})


def _event(kind, data, event_id="evt_1"):
    return {"id": event_id, "type": kind, "data": data}


def _post(client, supplier, body, *, secret=WEBHOOK_SECRET, nonce=None, now=None, raw=None, drop=()):
    url = _url(supplier)
    payload = raw if raw is not None else json.dumps(body).encode()
    headers = api_signing.signed_headers(
        key_id="webhook", secret=secret, method="POST", url=url, body=payload, nonce=nonce, now=now
    )
    if isinstance(body, dict) and "id" in body:
        headers[api_signing.HEADER_EVENT_ID] = str(body["id"])
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items() if name not in drop}
    return client.generic("POST", url, data=payload, content_type="application/json", **meta)


def _state(product):
    product.refresh_from_db()
    channel = SupplierChannel.objects.get(product=product)
    return product.cost_price, product.retail_price, product.is_on_shelf, channel.cost, channel.upstream_stock


def test_a_price_change_moves_cost_and_price_by_the_markup(client, docked):
    supplier, product = docked

    answer = _post(
        client, supplier, _event("product.price_changed", {"product_id": 41, "old_price": "80.00", "price": "96.00"})
    )

    assert answer.status_code == 200 and answer.json()["duplicate"] is False
    # 96.00 + 10 % = 105.60, rounded up to the yuan
    assert _state(product) == (Decimal("96.00"), Decimal("106.00"), True, Decimal("96.00"), 7)
    assert SupplierPriceChange.objects.get().new_cost == Decimal("96.00")


def test_the_same_event_delivered_again_is_applied_once(client, docked):
    supplier, product = docked
    body = _event("product.price_changed", {"product_id": 41, "old_price": "80.00", "price": "96.00"})

    first = _post(client, supplier, body)
    Product.objects.filter(pk=product.pk).update(retail_price=Decimal("99.00"))  # the merchant edits meanwhile
    again = _post(client, supplier, body)  # the upstream retries: new nonce, same event id

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["duplicate"] is True
    assert _state(product)[1] == Decimal("99.00")  # not re-applied over the merchant's edit
    assert UpstreamWebhookReceipt.objects.count() == 1 and SupplierPriceChange.objects.count() == 1


def test_a_replayed_request_is_refused(client, docked):
    supplier, product = docked
    body = _event("product.stock_changed", {"product_id": 41, "stock": 3, "in_stock": True})

    first = _post(client, supplier, body, nonce="n" * 32)
    replay = _post(client, supplier, body, nonce="n" * 32)

    assert first.status_code == 200
    assert replay.status_code == 401 and replay.json()["code"] == "auth_nonce_reused"


@pytest.mark.parametrize(
    "case, status, code",
    [
        ("wrong secret", 401, "auth_bad_signature"),
        ("no signature", 401, "auth_missing"),
        ("stale timestamp", 401, "auth_timestamp_invalid"),
        ("short nonce", 401, "auth_nonce_invalid"),
        ("not json", 400, "malformed_json"),
        ("price not a number", 422, "invalid_request"),
        ("negative stock", 422, "invalid_request"),
        ("unknown type", 422, "invalid_request"),
        ("event id differs from the header", 422, "invalid_request"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(client, docked, case, status, code):
    supplier, product = docked
    before = _state(product)
    body = _event("product.price_changed", {"product_id": 41, "old_price": "80.00", "price": "1.00"})
    options = {
        "wrong secret": {"secret": "another-secret-of-someone-else"},
        "no signature": {"drop": (api_signing.HEADER_SIGNATURE,)},
        "stale timestamp": {"now": 1_000_000_000},
        "short nonce": {"nonce": "abc"},
        "not json": {"raw": b"{not json"},
        "price not a number": {},
        "negative stock": {},
        "unknown type": {},
        "event id differs from the header": {},
    }[case]
    if case == "price not a number":
        body["data"]["price"] = "cheap"
    elif case == "negative stock":
        body = _event("product.stock_changed", {"product_id": 41, "stock": -1, "in_stock": True})
    elif case == "unknown type":
        body["type"] = "product.exploded"
    elif case == "event id differs from the header":
        url = _url(supplier)
        payload = json.dumps(body).encode()
        headers = api_signing.signed_headers(
            key_id="webhook", secret=WEBHOOK_SECRET, method="POST", url=url, body=payload
        )
        headers[api_signing.HEADER_EVENT_ID] = "evt_other"
        meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
        answer = client.generic("POST", url, data=payload, content_type="application/json", **meta)
    if case != "event id differs from the header":
        answer = _post(client, supplier, body, **options)

    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert _state(product) == before
    assert not UpstreamWebhookReceipt.objects.exists()


def test_an_upstream_without_a_webhook_secret_or_another_adapter_has_no_receiver(client, docked):
    supplier, _product = docked
    Supplier.objects.filter(pk=supplier.pk).update(webhook_secret_key_id="", webhook_secret_ciphertext=None)

    answer = _post(client, supplier, _event("product.delisted", {"product_id": 41}))

    assert answer.status_code == 404
    assert client.get(_url(supplier)).status_code == 405


def test_the_webhook_secret_is_stored_encrypted(docked):
    supplier, _product = docked
    supplier.refresh_from_db()

    assert WEBHOOK_SECRET.encode() not in bytes(supplier.webhook_secret_ciphertext)


def test_a_price_rise_to_the_sale_price_pauses_the_product_and_alerts_the_merchant(client, docked):
    supplier, product = docked
    # The merchant priced this one by hand: no markup rule, the price stays 88.00.
    SupplierChannel.objects.filter(product=product).update(markup_kind="", markup_value=None, markup_rounding="")

    answer = _post(
        client, supplier, _event("product.price_changed", {"product_id": 41, "old_price": "80.00", "price": "88.00"})
    )

    assert answer.status_code == 200
    assert _state(product)[:3] == (Decimal("88.00"), Decimal("88.00"), False)  # never sold at a loss
    alert = SupplierAlert.objects.get(kind="cost_reached_price", product=product, resolved_at__isnull=True)
    assert "88.00" in alert.message
    assert [message.to for message in mail.outbox] == [["owner@example.com"]]


def test_a_stock_change_reaches_the_shop_like_local_stock(client, docked):
    supplier, product = docked

    _post(client, supplier, _event("product.stock_changed", {"product_id": 41, "stock": 2, "in_stock": True}))
    product.refresh_from_db()
    low = product_stock_state(product)
    _post(client, supplier, _event("product.stock_changed", {"product_id": 41, "stock": 0, "in_stock": False}, "evt_2"))
    product.refresh_from_db()
    out = product_stock_state(product)

    assert (low.in_stock, low.available, low.label) == (True, 2, "库存紧张")
    assert (out.in_stock, out.available) == (False, 0)
    assert SupplierChannel.objects.get(product=product).is_in_stock is False


def test_a_delisted_product_goes_off_the_shelf(client, docked):
    supplier, product = docked

    answer = _post(client, supplier, _event("product.delisted", {"product_id": 41}))

    product.refresh_from_db()
    assert answer.status_code == 200
    assert product.is_on_shelf is False and "上游已下架" in product.off_shelf_reason
    assert SupplierChannel.objects.get(product=product).is_in_stock is False


def test_order_events_on_the_same_url_are_acknowledged_and_change_no_product(client, docked):
    supplier, product = docked
    before = _state(product)

    answer = _post(
        client, supplier, _event("order.delivered", {"order_no": "K1", "client_order_no": "C1", "status": "completed"})
    )

    assert answer.status_code == 200
    assert _state(product) == before
    assert UpstreamWebhookReceipt.objects.get().kind == "order.delivered"
