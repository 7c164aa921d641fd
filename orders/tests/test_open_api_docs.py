"""The open API's description (issue 17 §1): OpenAPI 3.1 at /api/schema/, a docs page served
from local files under the site's CSP, the committed schema equal to the code's, and the
client example in docs/ signing requests a live server accepts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from orders.api.views import schema_text

from .docking_support import docked_site, owner
from .factories import add_keys, make_product

EXAMPLE = Path(settings.BASE_DIR) / "docs" / "api" / "client_example.py"
COMMITTED = Path(settings.BASE_DIR) / "docs" / "api" / "openapi.json"


def test_the_committed_schema_is_the_one_the_code_describes():
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(), (
        "docs/api/openapi.json differs from the code: run `manage.py write_openapi_schema` and commit it"
    )


@pytest.mark.django_db
def test_the_schema_is_openapi_3_1_with_every_endpoint_and_webhook(client):
    schema = client.get("/api/schema/").json()

    assert schema["openapi"].startswith("3.1")
    assert {"/api/v1/products", "/api/v1/orders", "/api/v1/orders/{client_order_no}", "/api/v1/balance"} <= set(
        schema["paths"]
    )
    assert set(schema["webhooks"]) == {
        "order.delivered",
        "order.refunded",
        "product.price_changed",
        "product.stock_changed",
        "product.delisted",
    }


@pytest.mark.django_db
def test_the_docs_page_loads_only_local_scripts_under_the_csp(client):
    response = client.get("/api/docs/")
    page = response.content.decode()

    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "cdn" not in page.lower() and "https://" not in page
    assert "swagger-ui-bundle.js" in page


@pytest.mark.django_db(transaction=True)
def test_the_client_example_signs_requests_a_live_server_accepts(live_server, django_user_model):
    staff = owner(django_user_model)
    docked = docked_site(staff=staff, prepaid="200.00")
    product = make_product(price="100.00")
    add_keys(product, 2)

    def run(*args):
        command = [sys.executable, str(EXAMPLE), live_server.url, docked.key.key_id, docked.secret, *args]
        return json.loads(subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout)

    balance = run("GET", "/api/v1/balance")
    order = run(
        "POST", "/api/v1/orders", json.dumps({"product_id": product.pk, "quantity": 1, "client_order_no": "EX-1"})
    )
    page = run("GET", "/api/v1/products?limit=5&cursor=0")
    forged = subprocess.run(
        [sys.executable, str(EXAMPLE), live_server.url, docked.key.key_id, "wrong", "GET", "/api/v1/balance"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert balance == {
        "status": 200,
        "body": {"balance": "200.00", "credit_limit": "0.00", "available": "200.00", "currency": "CNY"},
    }
    assert order["status"] == 201 and order["body"]["total_amount"] == "80.00"
    assert page["status"] == 200 and page["body"]["items"][0]["id"] == product.pk
    assert json.loads(forged.stdout)["body"]["code"] == "auth_bad_signature"
