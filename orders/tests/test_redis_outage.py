"""Redis stops while buyers pay: a real gunicorn against a throwaway redis-server (never the
shared one), stopped during checkout and during a callback. No 5xx; the paid order is in the
database; once Redis is back the database-driven re-drive completes it."""

import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from orders.models import Order, OrderStatus
from orders.services import sweep_stalled_orders

from .factories import add_keys, make_product, sandbox_notification

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayRedis:
    def __init__(self, directory: Path):
        self.port = _free_port()
        self.directory = directory
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _wait_for(probe, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            probe()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """Cookies, CSRF, no redirects followed; every answer kept for the 5xx count."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)
        self.answers: list[tuple[str, int, float]] = []

    def request(self, method: str, path: str, data: dict | None = None, body: bytes | None = None, headers=None):
        if data is not None:
            body = urllib.parse.urlencode(data).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})  # noqa: S310 — http://127.0.0.1 only
        started = time.monotonic()
        try:
            response = self.opener.open(request, timeout=30)
        except urllib.error.HTTPError as error:
            response = error
        text = response.read().decode("utf-8", "replace")
        self.answers.append((f"{method} {path}", response.status, time.monotonic() - started))
        return response.status, response.headers, text

    def csrf(self) -> str:
        return next(cookie.value for cookie in self.jar if cookie.name == "csrftoken")


@pytest.fixture
def shop(tmp_path):
    """gunicorn as `make run` starts it (real mode), its cache and broker on a throwaway Redis."""
    redis = ThrowawayRedis(tmp_path)
    redis.start()
    database = connection.settings_dict
    port = _free_port()
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "kamen.settings.base",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "SECRET_KEY": settings.SECRET_KEY,
        "SANDBOX_GATEWAY_SECRET": settings.SANDBOX_GATEWAY_SECRET,
        "KAMEN_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_CONN_MAX_AGE": "60",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "kamen.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--no-control-socket"]
        + ["--threads", "4", "--timeout", "60", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "gunicorn.log", "wb"),  # noqa: SIM115 — kept open for the server's life
    )
    _wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close(), 60)
    try:
        yield Browser(f"http://127.0.0.1:{port}"), redis
    finally:
        server.terminate()
        server.wait(timeout=20)
        redis.stop()


def _checkout_form(browser, product) -> dict:
    status, _headers, page = browser.request("GET", f"/products/{product.pk}/")
    assert status == 200
    token = re.search(r'name="checkout_token" value="([^"]+)"', page).group(1)
    return {
        "csrfmiddlewaretoken": browser.csrf(),
        "checkout_token": token,
        "quantity": "1",
        "contact": "buyer@example.com",
        "query_password": "pass1234",
    }


def _notify(browser, order) -> int:
    body, headers = sandbox_notification(order)
    status, _headers, _text = browser.request("POST", "/pay/notify/sandbox/", body=body, headers=headers)
    return status


def _redrive_after_the_broker_returns():
    """What the recovery loop does (the sweeper, here without waiting for its stall window)."""
    sweep_stalled_orders(now=timezone.now() + timedelta(minutes=settings.ORDER_STALL_MINUTES + 1))


def test_redis_stopped_during_checkout_the_buyer_pays_and_gets_the_key_after_it_returns(shop):
    browser, redis = shop
    product = make_product()
    add_keys(product, 3, prefix="OUTAGE")
    form = _checkout_form(browser, product)

    redis.stop()
    status, headers, _page = browser.request("POST", f"/buy/{product.pk}/", data=form)
    assert status == 302 and "/pay/sandbox/" in headers["Location"]
    cashier = urllib.parse.urlsplit(headers["Location"]).path
    assert browser.request("GET", cashier)[0] == 200
    assert browser.request("POST", cashier, data={"csrfmiddlewaretoken": browser.csrf(), "action": "pay"})[0] == 302
    order = Order.objects.get(product=product)
    assert _notify(browser, order) == 200  # the gateway's notification, while Redis is still down
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert browser.request("GET", f"/orders/{order.order_no}/")[0] == 200
    assert browser.request("GET", f"/orders/{order.order_no}/status.json")[0] == 200
    lookup = {"csrfmiddlewaretoken": browser.csrf(), "mode": "order_no", "identifier": order.order_no}
    assert browser.request("POST", "/query/", data=lookup | {"password": "pass1234"})[0] == 302
    assert browser.request("GET", "/healthz")[0] == 200

    redis.start()
    _redrive_after_the_broker_returns()

    status, _headers, text = browser.request("GET", f"/orders/{order.order_no}/status.json")
    assert status == 200 and '"status": "completed"' in text
    assert [answer for answer in browser.answers if answer[1] >= 500] == []
    assert max(seconds for _request, _status, seconds in browser.answers) < 2, browser.answers


def test_redis_stopped_during_a_callback_the_order_is_paid_once_and_completed_after_it_returns(shop):
    browser, redis = shop
    product = make_product()
    add_keys(product, 3, prefix="OUTAGE")
    status, headers, _page = browser.request("POST", f"/buy/{product.pk}/", data=_checkout_form(browser, product))
    assert status == 302
    order = Order.objects.get(product=product)

    redis.stop()
    statuses = [_notify(browser, order) for _repeat in range(3)]  # the gateway retries, too
    order.refresh_from_db()
    assert statuses == [200, 200, 200]
    assert order.status == OrderStatus.PAID and order.callbacks.get().times_received == 3

    redis.start()
    _redrive_after_the_broker_returns()

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED and order.deliveries.count() == 1
    assert [answer for answer in browser.answers if answer[1] >= 500] == []
