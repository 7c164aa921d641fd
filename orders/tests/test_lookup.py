"""Buyer order look-up: the right password opens the order; guessing is refused and locked out."""

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from kamen.security import counters
from orders.models import OrderStatus
from orders.services.access import SESSION_KEY, order_from_signed_token
from orders.services.lookup import LookupFailed, LookupLocked, lookup_orders, mask_contact

from .postsale_helpers import make_order

pytestmark = pytest.mark.django_db
LOOKUP = "/query/"
GENERIC_ERROR = "订单号/联系方式或查询密码不正确"


@pytest.fixture(autouse=True)
def clean_counters():
    cache.clear()
    counters.reset()
    yield
    cache.clear()
    counters.reset()


def post_lookup(client, identifier, password, mode="order_no", ip="203.0.113.7"):
    return client.post(
        LOOKUP, {"mode": mode, "identifier": identifier, "password": password}, REMOTE_ADDR=ip
    )


def test_the_right_password_lists_the_order_with_a_masked_contact(client):
    order = make_order(password="open-sesame", contact="alice.buyer@example.com")

    response = post_lookup(client, order.order_no, "open-sesame")

    assert response.status_code == 302
    assert response["Location"] == reverse("postsale:order-lookup-results")
    page = client.get(response["Location"]).content.decode()
    assert order.order_no in page
    assert "al***@example.com" in page
    assert "alice.buyer@example.com" not in page
    assert order.order_no in client.session[SESSION_KEY]


def test_order_number_is_matched_case_and_space_insensitively(client):
    order = make_order(password="open-sesame")

    response = post_lookup(client, f"  {order.order_no.lower()} ", "open-sesame")

    assert response.status_code == 302


def test_contact_and_password_find_only_the_orders_with_that_password(client):
    first = make_order(password="pass-one", contact="13800138000")
    second = make_order(password="pass-one", contact="13800138000")
    other_password = make_order(password="pass-two", contact="13800138000")
    someone_else = make_order(password="pass-one", contact="13900139000")

    response = post_lookup(client, "+86 138-0013-8000", "pass-one", mode="contact")

    page = client.get(response["Location"]).content.decode()
    assert first.order_no in page and second.order_no in page
    assert other_password.order_no not in page
    assert someone_else.order_no not in page
    assert "138****8000" in page


def test_wrong_password_and_unknown_number_get_the_same_message(client):
    order = make_order(password="open-sesame")

    wrong_password = post_lookup(client, order.order_no, "guess")
    unknown_number = post_lookup(client, "K999999999999999999", "open-sesame")

    assert wrong_password.status_code == unknown_number.status_code == 400
    assert GENERIC_ERROR in wrong_password.content.decode()
    assert GENERIC_ERROR in unknown_number.content.decode()
    assert SESSION_KEY not in client.session


def test_an_empty_form_says_what_is_missing_and_counts_nothing(client):
    order = make_order(password="open-sesame")

    response = post_lookup(client, "", "")

    assert response.status_code == 400
    assert "请填写订单号或下单时的联系方式" in response.content.decode()
    assert lookup_orders(order_no=order.order_no, password="open-sesame", ip="203.0.113.7") == [order]


@override_settings(ORDER_LOOKUP_MAX_ATTEMPTS=3, ORDER_LOOKUP_LOCKOUT_MINUTES=15)
def test_repeated_failures_lock_the_order_number_out_even_for_the_right_password(client):
    order = make_order(password="open-sesame")
    for guess in ("a1", "b2", "c3"):
        post_lookup(client, order.order_no, guess)

    response = post_lookup(client, order.order_no, "open-sesame")

    assert response.status_code == 429
    assert "尝试次数过多，请 15 分钟后再试" in response.content.decode()
    assert SESSION_KEY not in client.session


@override_settings(ORDER_LOOKUP_MAX_ATTEMPTS=3)
def test_the_lock_out_follows_the_order_number_across_addresses():
    order = make_order(password="open-sesame")
    for index in range(3):
        with pytest.raises(LookupFailed):
            lookup_orders(order_no=order.order_no, password="nope", ip=f"198.51.100.{index}")

    with pytest.raises(LookupLocked):
        lookup_orders(order_no=order.order_no, password="open-sesame", ip="198.51.100.99")


@override_settings(ORDER_LOOKUP_MAX_ATTEMPTS=50, ORDER_LOOKUP_MAX_ATTEMPTS_PER_IP=4)
def test_one_address_guessing_many_order_numbers_is_locked_out():
    order = make_order(password="open-sesame")
    for index in range(4):
        with pytest.raises(LookupFailed):
            lookup_orders(order_no=f"K00000000{index}", password="nope", ip="192.0.2.1")

    with pytest.raises(LookupLocked):
        lookup_orders(order_no=order.order_no, password="open-sesame", ip="192.0.2.1")
    assert lookup_orders(order_no=order.order_no, password="open-sesame", ip="192.0.2.2") == [order]


@override_settings(ORDER_LOOKUP_MAX_ATTEMPTS=3)
def test_a_success_resets_the_order_numbers_failure_count():
    order = make_order(password="open-sesame")
    for _ in range(2):
        with pytest.raises(LookupFailed):
            lookup_orders(order_no=order.order_no, password="nope", ip="192.0.2.1")
    lookup_orders(order_no=order.order_no, password="open-sesame", ip="192.0.2.1")

    for _ in range(2):
        with pytest.raises(LookupFailed):
            lookup_orders(order_no=order.order_no, password="nope", ip="192.0.2.1")
    assert lookup_orders(order_no=order.order_no, password="open-sesame", ip="192.0.2.1") == [order]


def test_an_order_number_alone_opens_nothing(client):
    order = make_order(password="open-sesame")

    assert client.get(reverse("postsale:order-open", args=[order.order_no])).status_code == 404
    assert client.get(reverse("postsale:order-vouchers", args=[order.order_no])).status_code == 404
    assert client.get(reverse("postsale:order-lookup-results")).status_code == 302


def test_a_looked_up_order_opens_its_page_with_a_signed_link(client):
    order = make_order(password="open-sesame")
    post_lookup(client, order.order_no, "open-sesame")

    response = client.get(reverse("postsale:order-open", args=[order.order_no]))

    assert response.status_code == 302
    token = response["Location"].split("?t=", 1)[1]
    assert order_from_signed_token(token) == order.order_no
    assert order_from_signed_token(token, max_age=-1) is None


def test_custom_fields_and_names_are_escaped_on_the_result(client):
    order = make_order(
        password="open-sesame",
        product_name="<img src=x onerror=alert(1)>",
        buyer_fields={"区服": "<script>alert('x')</script>"},
    )

    post_lookup(client, order.order_no, "open-sesame")
    page = client.get(reverse("postsale:order-lookup-results")).content.decode()

    assert "<script>alert('x')</script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<img src=x" not in page


def test_lookup_page_renders_both_modes(client):
    assert "订单号" in client.get(LOOKUP).content.decode()
    assert "下单时填写的邮箱或手机号" in client.get(LOOKUP + "?mode=contact").content.decode()


def test_pending_orders_are_found_too(client):
    order = make_order(password="open-sesame", status=OrderStatus.PENDING_PAYMENT)

    assert lookup_orders(order_no=order.order_no, password="open-sesame") == [order]


def test_masking_keeps_contacts_recognisable_but_not_harvestable():
    assert mask_contact("bob@example.com") == "bo***@example.com"
    assert mask_contact("13800138000") == "138****8000"


def test_no_page_reachable_with_an_order_number_shows_the_card_key(client):
    from catalog.models import CardKey, CardKeyBatch
    from kamen import crypto
    from orders.models import DeliveryKind, OrderDelivery

    order = make_order(password="open-sesame")
    batch = CardKeyBatch.objects.create(product=order.product, key_count=1)
    key_id, blob = crypto.encrypt("CARD-SECRET-0001")
    card_key = CardKey.objects.create(
        product=order.product, batch=batch, secret_ciphertext=blob, key_id=key_id, fingerprint="lookup-secret-1",
        status="sold", sold_at=order.paid_at,
    )
    OrderDelivery.objects.create(order=order, product=order.product, kind=DeliveryKind.CARD_KEY, card_key=card_key)

    pages = [
        post_lookup(client, order.order_no, "").content,
        post_lookup(client, order.order_no, "wrong").content,
        client.get(reverse("postsale:order-open", args=[order.order_no])).content,
        client.get(reverse("postsale:order-vouchers", args=[order.order_no])).content,
        client.get(reverse("postsale:order-lookup-results")).content,
    ]

    assert all(b"CARD-SECRET-0001" not in page for page in pages)
    assert SESSION_KEY not in client.session


def test_a_signed_link_for_another_order_opens_nothing(client):
    order = make_order(password="open-sesame")
    other = make_order(password="open-sesame")
    from orders.services.access import signed_order_token

    url = reverse("postsale:order-vouchers", args=[order.order_no])

    assert client.get(url, {"t": signed_order_token(other)}).status_code == 404
    assert client.get(url, {"t": "forged"}).status_code == 404
    assert client.get(url, {"t": signed_order_token(order)}).status_code == 200


def _break_the_cache(monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis down")

    for name in ("get", "get_many", "set", "add", "incr", "delete"):
        monkeypatch.setattr(cache, name, broken)


def test_when_the_cache_is_down_the_right_password_still_opens_the_order(client, monkeypatch):
    order = make_order(password="open-sesame")
    _break_the_cache(monkeypatch)

    response = post_lookup(client, order.order_no, "open-sesame")

    assert response.status_code == 302
    assert order.order_no in client.session[SESSION_KEY]


@override_settings(ORDER_LOOKUP_MAX_ATTEMPTS=3)
def test_when_the_cache_is_down_guessing_is_still_locked_out(client, monkeypatch):
    order = make_order(password="open-sesame")
    _break_the_cache(monkeypatch)

    statuses = [post_lookup(client, order.order_no, f"guess-{n}").status_code for n in range(3)]
    after = post_lookup(client, order.order_no, "open-sesame")

    assert statuses == [400, 400, 400]
    assert after.status_code == 429
    assert SESSION_KEY not in client.session
