"""The sandbox supplier's HTTP API: signed requests only, idempotent orders, honest stock."""

import json
import time
from decimal import Decimal

import pytest

from catalog.models import SandboxAccount, SandboxOrder, SandboxSku
from catalog.sandbox_services import create_sandbox_account, drift_sandbox_prices
from catalog.suppliers import OrderStatus, SandboxSupplierClient, UrllibTransport
from catalog.suppliers.signing import signed_headers

from .suppliers_support import SECRET, make_sku

URL = "/sandbox/supplier/balance/"


@pytest.fixture
def account(db):
    return create_sandbox_account(name="沙箱", app_id="app-1", app_secret=SECRET, balance=Decimal("500.00"))


def post(client, url, payload, *, secret=SECRET, app_id="app-1", **header_overrides):
    body = json.dumps(payload).encode()
    headers = signed_headers(secret=secret, app_id=app_id, body=body) | header_overrides
    headers.pop("Content-Type")
    return client.generic("POST", url, data=body, content_type="application/json", headers=headers)


def test_a_correctly_signed_request_is_answered(client, account):
    response = post(client, URL, {})

    assert response.status_code == 200
    assert response.json() == {"ok": True, "balance": "500.00"}


def test_a_forged_signature_is_rejected(client, account):
    response = post(client, URL, {}, secret="not-the-secret-at-all-000000")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"


def test_a_body_changed_after_signing_is_rejected(client, account):
    body = json.dumps({"skus": ["A"]}).encode()
    headers = signed_headers(secret=SECRET, app_id="app-1", body=body)
    headers.pop("Content-Type")

    response = client.generic("POST", "/sandbox/supplier/prices/", data=b'{"skus": ["B"]}', content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"


def test_a_stale_timestamp_is_rejected(client, account):
    body = b"{}"
    headers = signed_headers(secret=SECRET, app_id="app-1", body=body, now=time.time() - 301)
    headers.pop("Content-Type")

    response = client.generic("POST", URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "stale_timestamp"


def test_a_replayed_request_is_rejected(client, account):
    body = b"{}"
    headers = signed_headers(secret=SECRET, app_id="app-1", body=body)
    headers.pop("Content-Type")

    first = client.generic("POST", URL, data=body, content_type="application/json", headers=headers)
    replay = client.generic("POST", URL, data=body, content_type="application/json", headers=headers)

    assert first.status_code == 200
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "replayed_nonce"


def test_unsigned_and_unknown_callers_get_clear_errors(client, account):
    unsigned = client.post(URL, data=b"{}", content_type="application/json")
    unknown = post(client, URL, {}, app_id="nobody")
    wrong_method = client.get(URL)

    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "missing_signature"
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "unknown_app_id"
    assert wrong_method.status_code == 405


def test_a_retried_order_is_charged_once(client, account):
    make_sku("CM100", price="97.00", stock=5)
    order = {"sku": "CM100", "target": "13800138000", "quantity": 1, "out_order_no": "K-1"}

    first = post(client, "/sandbox/supplier/orders/", order).json()
    again = post(client, "/sandbox/supplier/orders/", order).json()

    account.refresh_from_db()
    assert first["order"]["order_no"] == again["order"]["order_no"]
    assert again["duplicate"] is True
    assert account.balance == Decimal("403.00")
    assert SandboxSku.objects.get(sku="CM100").stock == 4
    assert SandboxOrder.objects.count() == 1


def test_an_out_order_no_reused_for_another_order_is_refused(client, account):
    make_sku("CM100")
    post(client, "/sandbox/supplier/orders/", {"sku": "CM100", "target": "13800138000", "quantity": 1, "out_order_no": "K-1"})

    response = post(client, "/sandbox/supplier/orders/", {"sku": "CM100", "target": "13900139000", "quantity": 1, "out_order_no": "K-1"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "out_order_no_conflict"


def test_out_of_stock_and_bad_input_are_refused_without_charging(client, account):
    make_sku("EMPTY", stock=0)

    empty = post(client, "/sandbox/supplier/orders/", {"sku": "EMPTY", "target": "1", "quantity": 1, "out_order_no": "K-2"})
    negative = post(client, "/sandbox/supplier/orders/", {"sku": "EMPTY", "target": "1", "quantity": -1, "out_order_no": "K-3"})
    unknown = post(client, "/sandbox/supplier/orders/", {"sku": "NOPE", "target": "1", "quantity": 1, "out_order_no": "K-4"})

    assert empty.json()["error"]["code"] == "out_of_stock"
    assert negative.status_code == 400 and "quantity" in negative.json()["error"]["message"]
    assert unknown.json()["error"]["code"] == "unknown_sku"
    assert SandboxAccount.objects.get(pk=account.pk).balance == Decimal("500.00")
    assert not SandboxOrder.objects.exists()


def test_price_drift_moves_prices_within_bounds(account):
    import random

    make_sku("CM100", price="100.00")

    drift_sandbox_prices(max_percent=Decimal(5), rng=random.Random(7))

    price = SandboxSku.objects.get(sku="CM100").price
    assert Decimal("95.00") <= price <= Decimal("105.00")


@pytest.mark.django_db(transaction=True)
def test_the_client_talks_to_the_sandbox_over_real_http(live_server):
    create_sandbox_account(name="沙箱", app_id="app-http", app_secret=SECRET, balance=Decimal("200.00"))
    make_sku("CM100", price="97.00")
    client = SandboxSupplierClient(
        base_url=f"{live_server.url}/sandbox/supplier/", app_id="app-http", app_secret=SECRET, transport=UrllibTransport(), timeout=5
    )

    placed = client.place_order(sku="CM100", target="13800138000", quantity=1, out_order_no="HTTP-1")
    queried = client.query_order(out_order_no="HTTP-1")
    missing = client.query_order(out_order_no="HTTP-404")
    quotes = client.fetch_prices(skus=["CM100", "NOPE"])
    balance = client.fetch_balance()

    assert placed.status == OrderStatus.SUCCEEDED and placed.cost == Decimal("97.00")
    assert queried.supplier_order_no == placed.supplier_order_no
    assert missing.status == OrderStatus.FAILED
    assert list(quotes) == ["CM100"] and quotes["CM100"].price == Decimal("97.00") and quotes["CM100"].is_in_stock
    assert balance == Decimal("103.00")


def test_an_unreachable_supplier_is_a_failure_not_a_hang():
    client = SandboxSupplierClient(base_url="http://127.0.0.1:9/sandbox/supplier/", app_id="x", app_secret=SECRET, timeout=2)

    result = client.place_order(sku="CM100", target="1", quantity=1, out_order_no="X-1")

    assert result.status == OrderStatus.FAILED


def test_the_drift_command_refuses_a_silly_percentage(account):
    from django.core.management import CommandError, call_command

    make_sku("CM100", price="100.00")

    with pytest.raises(CommandError, match="at most 50"):
        call_command("sandbox_drift_prices", "--percent", "80")

    assert SandboxSku.objects.get(sku="CM100").price == Decimal("100.00")
