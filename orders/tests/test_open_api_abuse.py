"""Bad input and abuse of the open API (issue 17 §3): every refusal a stable code, and nothing
changed — no order, no stock held, no money moved."""

import json
import time
from decimal import Decimal

import pytest

from catalog.models import CardKey, CardKeyStatus
from commissions.models import JournalTransaction
from commissions.services.prepaid import prepaid_balance
from distribution.docking.models import ApiScope, DockingSite
from distribution.docking.services import create_api_key, revoke_api_key, suspend_docking_site
from orders.api.models import DockingOrder
from orders.models import Order

from .docking_support import docked_site, owner, signed_call
from .factories import add_keys, make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    return owner(django_user_model)


@pytest.fixture
def product():
    made = make_product(price="100.00")
    add_keys(made, 5)
    return made


@pytest.fixture
def docked(staff):
    return docked_site(staff=staff, prepaid="1000.00")


def _payload(product, client_order_no="C-1", quantity=1):
    return {"product_id": product.pk, "quantity": quantity, "client_order_no": client_order_no}


def _world(docked):
    return (
        Order.objects.count(),
        DockingOrder.objects.count(),
        JournalTransaction.objects.count(),
        CardKey.objects.exclude(status=CardKeyStatus.AVAILABLE).count(),
        prepaid_balance(docked.site.distributor_id),
    )


def _refused(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert body["message_zh"] and body["message_en"]


def test_an_unsigned_request_is_refused(client, docked, product):
    before = _world(docked)

    response = client.post("/api/v1/orders", data=json.dumps(_payload(product)), content_type="application/json")

    _refused(response, 401, "auth_missing")
    assert _world(docked) == before


def test_an_expired_timestamp_is_refused(client, docked, product):
    before = _world(docked)

    response = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product), now=time.time() - 301)

    _refused(response, 401, "auth_timestamp_invalid")
    assert _world(docked) == before


def test_a_timestamp_from_the_future_is_refused(client, docked, product):
    response = signed_call(client, docked, "GET", "/api/v1/balance", now=time.time() + 400)

    _refused(response, 401, "auth_timestamp_invalid")


def test_the_same_signed_request_twice_is_a_replay(client, docked, product):
    first = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product), nonce="n" * 32)
    after_first = _world(docked)

    second = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product), nonce="n" * 32)

    assert first.status_code == 201
    _refused(second, 401, "auth_nonce_reused")
    assert _world(docked) == after_first


def test_a_signature_made_with_another_secret_is_refused(client, docked, product):
    before = _world(docked)

    response = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product), secret="not-the-secret")

    _refused(response, 401, "auth_bad_signature")
    assert _world(docked) == before


def test_a_body_changed_after_signing_is_refused(client, docked, product):
    from kamen import api_signing

    body = json.dumps(_payload(product, quantity=1)).encode()
    headers = api_signing.signed_headers(
        key_id=docked.key.key_id, secret=docked.secret, method="POST", url="/api/v1/orders", body=body
    )
    tampered = json.dumps(_payload(product, quantity=5)).encode()
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}

    response = client.generic("POST", "/api/v1/orders", data=tampered, content_type="application/json", **meta)

    _refused(response, 401, "auth_bad_signature")
    assert Order.objects.count() == 0


def test_a_query_changed_after_signing_is_refused(client, docked, product):
    from kamen import api_signing

    headers = api_signing.signed_headers(
        key_id=docked.key.key_id, secret=docked.secret, method="GET", url="/api/v1/products?limit=1"
    )
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}

    response = client.get("/api/v1/products?limit=100", **meta)

    _refused(response, 401, "auth_bad_signature")


def test_an_unknown_key_is_refused(client, docked, product):
    docked.key.key_id = "ak_doesnotexist"

    response = signed_call(client, docked, "GET", "/api/v1/balance")

    _refused(response, 401, "auth_unknown_key")


def test_a_revoked_key_is_refused(client, docked, product, staff):
    revoke_api_key(key=docked.key, actor=staff)
    before = _world(docked)

    response = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product))

    _refused(response, 401, "auth_key_revoked")
    assert _world(docked) == before


def test_a_suspended_site_is_refused(client, docked, product, staff):
    suspend_docking_site(site=docked.site, actor=staff, reason="欠款")

    response = signed_call(client, docked, "GET", "/api/v1/balance")

    _refused(response, 403, "auth_site_inactive")


def test_a_key_without_the_scope_is_refused(client, staff, product):
    reader = docked_site(staff=staff, scopes=[ApiScope.CATALOG_READ])
    before = _world(reader)

    response = signed_call(client, reader, "POST", "/api/v1/orders", _payload(product))

    _refused(response, 403, "auth_scope_denied")
    assert _world(reader) == before
    assert signed_call(client, reader, "GET", "/api/v1/products").status_code == 200


def test_a_key_over_its_rate_limit_is_answered_429(client, docked, product):
    DockingSite.objects.filter(pk=docked.site.pk).update(requests_per_minute=2)

    answers = [signed_call(client, docked, "GET", "/api/v1/balance") for _ in range(3)]

    assert [a.status_code for a in answers[:2]] == [200, 200]
    _refused(answers[2], 429, "rate_limited")
    assert answers[2]["Retry-After"] == "60"


def test_unsigned_requests_do_not_use_up_a_keys_rate_limit(client, docked, product):
    DockingSite.objects.filter(pk=docked.site.pk).update(requests_per_minute=2)
    for _ in range(5):
        signed_call(client, docked, "GET", "/api/v1/balance", secret="forged")

    assert signed_call(client, docked, "GET", "/api/v1/balance").status_code == 200


def test_a_request_from_outside_the_ip_allowlist_is_refused(client, staff, product):
    fenced = docked_site(staff=staff, ip_allowlist=["10.0.0.0/8"])
    before = _world(fenced)

    outside = signed_call(client, fenced, "POST", "/api/v1/orders", _payload(product), REMOTE_ADDR="192.0.2.7")
    inside = signed_call(client, fenced, "GET", "/api/v1/balance", REMOTE_ADDR="10.1.2.3")

    _refused(outside, 403, "auth_ip_not_allowed")
    assert _world(fenced) == before
    assert inside.status_code == 200


def test_another_sites_order_is_not_found_and_cannot_be_refunded(client, staff, docked, product):
    other = docked_site(staff=staff, name="别人的站")
    placed = signed_call(client, other, "POST", "/api/v1/orders", _payload(product, "THEIRS")).json()

    by_number = signed_call(client, docked, "GET", "/api/v1/orders/THEIRS")
    by_order_no = signed_call(client, docked, "GET", f"/api/v1/orders/{placed['order_no']}")
    refund = signed_call(client, docked, "POST", "/api/v1/orders/THEIRS/refund-requests", {"reason": "试试"})
    statement = signed_call(client, docked, "GET", "/api/v1/statement").json()
    balance = signed_call(client, docked, "GET", "/api/v1/balance").json()

    _refused(by_number, 404, "order_not_found")
    _refused(by_order_no, 404, "order_not_found")
    _refused(refund, 404, "order_not_found")
    assert all(line["order_no"] != placed["order_no"] for line in statement["items"])
    assert balance["balance"] == "1000.00"


def test_malformed_json_is_refused(client, docked, product):
    before = _world(docked)

    response = signed_call(client, docked, "POST", "/api/v1/orders", raw_body=b'{"product_id": 1, "quantity":')

    _refused(response, 400, "malformed_json")
    assert _world(docked) == before


@pytest.mark.parametrize("quantity", [-1, 0, 10**30, "2", 1.5, None])
def test_a_quantity_that_is_not_a_sane_positive_integer_is_refused(client, docked, product, quantity):
    before = _world(docked)

    response = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product) | {"quantity": quantity})

    _refused(response, 422, "invalid_request")
    assert _world(docked) == before


def test_a_quantity_above_the_products_maximum_is_refused(client, docked, product):
    response = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product, quantity=11))

    _refused(response, 422, "invalid_request")


def test_an_unknown_product_is_refused(client, docked, product):
    response = signed_call(
        client, docked, "POST", "/api/v1/orders", {"product_id": 999999, "quantity": 1, "client_order_no": "X"}
    )

    _refused(response, 404, "product_not_found")


def test_more_than_the_stock_is_refused_and_holds_nothing(client, docked):
    scarce = make_product(price="10.00")
    add_keys(scarce, 1)
    before = _world(docked)

    response = signed_call(client, docked, "POST", "/api/v1/orders", _payload(scarce, quantity=2))

    _refused(response, 409, "out_of_stock")
    assert _world(docked) == before


def test_an_order_above_the_prepaid_balance_is_refused_and_changes_nothing(client, staff, product):
    poor = docked_site(staff=staff, prepaid="50.00")  # price 80.00
    before = _world(poor)

    response = signed_call(client, poor, "POST", "/api/v1/orders", _payload(product))

    _refused(response, 402, "insufficient_balance")
    assert _world(poor) == before


def test_the_credit_limit_lets_the_balance_go_below_zero_and_no_further(client, staff, product):
    trusted = docked_site(staff=staff, prepaid="50.00", credit_limit="100.00")

    first = signed_call(client, trusted, "POST", "/api/v1/orders", _payload(product, "A"))
    second = signed_call(client, trusted, "POST", "/api/v1/orders", _payload(product, "B"))

    assert first.status_code == 201
    _refused(second, 402, "insufficient_balance")
    assert prepaid_balance(trusted.site.distributor_id) == Decimal("-30.00")


def test_the_same_client_order_no_for_another_request_is_a_conflict(client, docked, product):
    signed_call(client, docked, "POST", "/api/v1/orders", _payload(product, "SAME", quantity=1))
    after_first = _world(docked)

    response = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product, "SAME", quantity=2))

    _refused(response, 409, "client_order_no_conflict")
    assert _world(docked) == after_first


def test_a_client_order_no_with_odd_characters_is_refused(client, docked, product):
    response = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product, "a b/../c"))

    _refused(response, 422, "invalid_request")


def test_a_new_key_secret_is_never_stored_in_plaintext(docked, staff):
    key, secret = create_api_key(site=docked.site, scopes=[ApiScope.CATALOG_READ], actor=staff)

    assert secret.encode() not in bytes(key.secret_ciphertext)
    assert secret not in json.dumps([str(v) for v in key.__dict__.values()])


# --- a key this process has seen recently (its secret is cached) is still checked fresh ---------
def test_a_key_revoked_after_use_is_refused_on_its_next_request(client, docked, product, staff):
    assert signed_call(client, docked, "GET", "/api/v1/balance").status_code == 200  # now cached
    revoke_api_key(key=docked.key, actor=staff)
    before = _world(docked)

    response = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product))

    _refused(response, 401, "auth_key_revoked")
    assert _world(docked) == before


def test_a_site_suspended_after_use_is_refused_on_its_next_request(client, docked, product, staff):
    assert signed_call(client, docked, "GET", "/api/v1/balance").status_code == 200
    suspend_docking_site(site=docked.site, actor=staff, reason="欠款")

    response = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product))

    _refused(response, 403, "auth_site_inactive")


def test_an_allowlist_or_scope_narrowed_after_use_applies_on_the_next_request(client, docked, product):
    from distribution.docking.models import ApiKey

    assert signed_call(client, docked, "GET", "/api/v1/balance", REMOTE_ADDR="192.0.2.7").status_code == 200
    DockingSite.objects.filter(pk=docked.site.pk).update(ip_allowlist=["10.0.0.0/8"])

    outside = signed_call(client, docked, "GET", "/api/v1/balance", REMOTE_ADDR="192.0.2.7")
    ApiKey.objects.filter(pk=docked.key.pk).update(scopes=[ApiScope.CATALOG_READ])
    inside = signed_call(client, docked, "GET", "/api/v1/balance", REMOTE_ADDR="10.1.2.3")

    _refused(outside, 403, "auth_ip_not_allowed")
    _refused(inside, 403, "auth_scope_denied")


def test_a_replay_of_a_request_whose_key_is_cached_is_refused(client, docked, product):
    first = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product), nonce="n" * 32, now=time.time())
    replay = signed_call(client, docked, "POST", "/api/v1/orders", _payload(product), nonce="n" * 32, now=time.time())

    assert first.status_code == 201
    _refused(replay, 401, "auth_nonce_reused")
    assert DockingOrder.objects.count() == 1
