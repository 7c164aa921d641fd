"""Behind a real nginx (the bench's config, issue 25 §4) two buyers on two addresses are two
buyers — on their orders and to the rate limiter — and an X-Forwarded-For the buyer writes
themselves changes neither. test_behind_proxy.py checks the same rules with headers made up in
the test; this one lets nginx write them."""

import http.client
import re
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

import pytest
from django.core.cache import cache

from bench.reverse_proxy import INSTALL_HINT, nginx_binary, start_nginx
from kamen.security import counters
from orders.models import Order

from .factories import add_keys, make_product

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(nginx_binary() is None, reason=INSTALL_HINT),
]

ALICE, BOB = "127.0.0.2", "127.0.0.3"
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CHECKOUT_TOKEN_RE = re.compile(r'name="checkout_token" value="([^"]+)"')


class Buyer:
    """A browser on one loopback address (its socket bound there), with its cookies."""

    def __init__(self, base_url: str, address: str):
        self.url, self.address, self.cookies = urlsplit(base_url), address, SimpleCookie()

    def request(self, method: str, path: str, *, form: dict | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection(
            self.url.hostname, self.url.port, timeout=10, source_address=(self.address, 0)
        )
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={morsel.value}" for name, morsel in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        for header in response.msg.get_all("Set-Cookie") or []:
            self.cookies.load(header)
        return response.status, text

    def checkout(self, product, contact: str, **headers) -> int:
        status, page = self.request("GET", f"/products/{product.pk}/", headers=headers)
        assert status == 200, page[:200]
        form = {
            "csrfmiddlewaretoken": CSRF_RE.search(page).group(1),
            "checkout_token": CHECKOUT_TOKEN_RE.search(page).group(1),
            "quantity": "1",
            "contact": contact,
            "query_password": "pass1234",
        }
        status, _answer = self.request("POST", f"/buy/{product.pk}/", form=form, headers=headers)
        return status


@pytest.fixture
def nginx(live_server, settings):
    """nginx in front of the live server, which trusts it (and only it)."""
    settings.KAMEN_TRUSTED_PROXIES = ["127.0.0.1"]
    settings.KAMEN_RATE_LIMITS = [("checkout", r"^/buy/\d+/$", ("POST",), 1, 60)]
    cache.clear()
    counters.reset()
    port = urlsplit(live_server.url).port
    proxy = start_nginx(upstream=f"http://127.0.0.1:{port}")
    yield proxy
    proxy.stop()
    cache.clear()
    counters.reset()


def test_through_nginx_two_addresses_are_two_buyers_and_a_forged_header_is_not_believed(nginx):
    product = make_product()
    add_keys(product, 5)
    alice, bob = Buyer(nginx.base_url, ALICE), Buyer(nginx.base_url, BOB)

    # Alice writes an address of her own choosing; nginx appends the one it saw.
    assert alice.checkout(product, "alice@example.com", **{"X-Forwarded-For": "6.6.6.6"}) == 302
    assert bob.checkout(product, "bob@example.com") == 302

    assert sorted(Order.objects.values_list("buyer_ip", flat=True)) == [ALICE, BOB]
    # One checkout a minute each: the limiter keys on Alice, whatever she writes next time.
    assert alice.checkout(product, "alice2@example.com", **{"X-Forwarded-For": "7.7.7.7"}) == 429
    assert Order.objects.count() == 2


def test_without_trusting_nginx_every_buyer_is_nginx(nginx, settings):
    """The setting is what makes the difference: untrusted, the header is ignored and every
    buyer is nginx's own address (what the bench's http_proxy_429 would show)."""
    settings.KAMEN_TRUSTED_PROXIES = []
    product = make_product()
    add_keys(product, 5)

    assert Buyer(nginx.base_url, ALICE).checkout(product, "alice@example.com") == 302
    assert Buyer(nginx.base_url, BOB).checkout(product, "bob@example.com") == 429
    assert list(Order.objects.values_list("buyer_ip", flat=True)) == ["127.0.0.1"]
