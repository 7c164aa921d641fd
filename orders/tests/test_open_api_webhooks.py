"""Webhooks to docking sites (issue 17 §1, §4): written to the outbox in the delivery
transaction, signed like a request, retried with backoff for 24 hours, logged, resent by hand."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.suppliers.base import TransportResponse, TransportTimeout
from commissions.services.prepaid import prepaid_balance
from distribution.docking.models import WebhookAttempt, WebhookEvent, WebhookStatus
from distribution.docking.services import set_webhook
from distribution.docking.webhooks import deliver_due_webhooks, deliver_webhook_event, resend_webhook_event
from kamen import api_signing
from orders.api.models import ApiRefundRequest
from orders.api.services import approve_refund_request
from orders.models import Order
from orders.services.fulfilment import fulfil_order

from .docking_support import docked_site, owner, signed_call
from .factories import add_keys, make_product

pytestmark = pytest.mark.django_db


class Receiver:
    """A callback endpoint: answers the codes given, in turn (then 200), and keeps what it got."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.received = []

    def __call__(self, *, url, body, headers, timeout):
        self.received.append((url, body, headers))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return TransportResponse(status_code=answer, body=b"ok")


@pytest.fixture
def staff(django_user_model):
    return owner(django_user_model)


@pytest.fixture
def hooked(staff):
    docked = docked_site(staff=staff)
    docked.webhook_secret = set_webhook(site=docked.site, url="https://downstream.example/hooks?x=1", actor=staff)
    return docked


def _delivered_order(client, docked):
    product = make_product(price="100.00")
    add_keys(product, 2)
    answer = signed_call(
        client, docked, "POST", "/api/v1/orders", {"product_id": product.pk, "quantity": 1, "client_order_no": "W-1"}
    )
    order = Order.objects.get(order_no=answer.json()["order_no"])
    fulfil_order(order_id=order.pk)
    return order


def test_delivery_writes_order_delivered_to_the_outbox_in_the_same_transaction(client, hooked):
    order = _delivered_order(client, hooked)

    event = WebhookEvent.objects.get(site=hooked.site)

    assert event.kind == "order.delivered" and event.status == WebhookStatus.PENDING
    assert event.payload["data"] == {"order_no": order.order_no, "client_order_no": "W-1", "status": "completed"}
    assert event.payload["id"] == event.event_id


def test_a_site_without_a_callback_url_gets_no_events(client, staff):
    plain = docked_site(staff=staff)

    _delivered_order(client, plain)

    assert not WebhookEvent.objects.exists()


def test_an_event_is_signed_like_a_request_with_the_sites_webhook_secret(client, hooked):
    _delivered_order(client, hooked)
    receiver = Receiver(200)

    event = deliver_webhook_event(event_pk=WebhookEvent.objects.get().pk, transport=receiver)

    url, body, headers = receiver.received[0]
    expected = api_signing.compute_signature(
        secret=hooked.webhook_secret,
        method="POST",
        path="/hooks",
        query="x=1",
        timestamp=headers[api_signing.HEADER_TIMESTAMP],
        nonce=headers[api_signing.HEADER_NONCE],
        body=body,
    )
    assert headers[api_signing.HEADER_SIGNATURE] == expected
    assert headers[api_signing.HEADER_EVENT_ID] == event.event_id == json.loads(body)["id"]
    assert event.status == WebhookStatus.DELIVERED and event.last_status_code == 200


def test_a_receiver_that_fails_five_times_gets_the_event_on_the_sixth_try(client, hooked):
    _delivered_order(client, hooked)
    receiver = Receiver(500, 503, TransportTimeout("read timed out"), 502, 404)
    now = timezone.now()

    for _ in range(6):
        now += timedelta(hours=3)  # past any backoff of the schedule
        deliver_due_webhooks(now=now, transport=receiver)

    event = WebhookEvent.objects.get()
    log = list(WebhookAttempt.objects.filter(event=event).order_by("id").values_list("status_code", flat=True))
    assert log == [500, 503, None, 502, 404, 200]
    assert event.status == WebhookStatus.DELIVERED and event.attempts == 6
    assert len({headers[api_signing.HEADER_NONCE] for _url, _body, headers in receiver.received}) == 6


def test_retries_back_off_exponentially_and_stop_after_24_hours(client, hooked):
    _delivered_order(client, hooked)
    event = WebhookEvent.objects.get()
    now = event.created_at
    delays = []

    while True:
        deliver_webhook_event(event_pk=event.pk, transport=Receiver(500), now=now)
        event.refresh_from_db()
        if event.status != WebhookStatus.PENDING:
            break
        delays.append((event.next_attempt_at - now).total_seconds())
        now = event.next_attempt_at

    assert delays[:4] == [30, 60, 120, 240]
    assert max(delays) == 7200
    assert event.status == WebhookStatus.GAVE_UP
    assert now - event.created_at <= timedelta(hours=24)


def test_an_event_not_yet_due_is_not_sent(client, hooked):
    _delivered_order(client, hooked)
    event = WebhookEvent.objects.get()
    deliver_webhook_event(event_pk=event.pk, transport=Receiver(500))
    receiver = Receiver(200)

    deliver_due_webhooks(transport=receiver)

    assert receiver.received == []


def test_staff_resend_a_given_up_event_by_hand(client, hooked, staff):
    _delivered_order(client, hooked)
    event = WebhookEvent.objects.get()
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookStatus.GAVE_UP)

    resent = resend_webhook_event(event=event, actor=staff, transport=Receiver(200))

    assert resent.status == WebhookStatus.DELIVERED
    assert WebhookAttempt.objects.get(event=event).is_manual


def test_an_approved_refund_returns_the_money_to_the_prepaid_balance_and_tells_the_site(client, hooked, staff):
    _delivered_order(client, hooked)
    signed_call(client, hooked, "POST", "/api/v1/orders/W-1/refund-requests", {"reason": "卡密无效"})

    approve_refund_request(refund_request=ApiRefundRequest.objects.get(), actor=staff)

    assert prepaid_balance(hooked.site.distributor_id) == Decimal("1000.00")
    assert signed_call(client, hooked, "GET", "/api/v1/orders/W-1").json()["status"] == "refunded"
    assert WebhookEvent.objects.filter(kind="order.refunded").count() == 1


def test_price_stock_and_delisting_reach_the_site_once_each(hooked):
    from catalog.models import Product
    from distribution.docking.product_events import emit_product_events

    product = make_product(price="100.00")
    add_keys(product, 2)
    silent_first = emit_product_events()
    Product.objects.filter(pk=product.pk).update(retail_price=Decimal("110.00"))
    price_run = emit_product_events()
    add_keys(product, 1)
    stock_run = emit_product_events()
    quiet_run = emit_product_events()
    Product.objects.filter(pk=product.pk).update(is_on_shelf=False)
    delisted_run = emit_product_events()

    events = [(e.kind, e.payload["data"]) for e in WebhookEvent.objects.order_by("id")]
    assert (silent_first, price_run, stock_run, quiet_run, delisted_run) == (0, 1, 1, 0, 1)
    assert events == [
        ("product.price_changed", {"product_id": product.pk, "old_price": "80.00", "price": "88.00"}),
        ("product.stock_changed", {"product_id": product.pk, "stock": 3, "in_stock": True}),
        ("product.delisted", {"product_id": product.pk}),
    ]


def _events(site, count):
    from distribution.docking.services import add_webhook_event

    return [
        add_webhook_event(site_id=site.pk, kind="order.delivered", payload={"order_no": f"N{n}"}) for n in range(count)
    ]


def test_a_batch_sends_each_due_event_once_and_logs_every_answer(hooked):
    events = _events(hooked.site, 3)
    by_order = {"N0": 200, "N1": 500, "N2": 204}

    def receiver(*, url, body, headers, timeout):
        return TransportResponse(status_code=by_order[json.loads(body)["data"]["order_no"]], body=b"")

    delivered = deliver_due_webhooks(transport=receiver)

    assert delivered == 2
    states = {e.payload["data"]["order_no"]: e for e in WebhookEvent.objects.filter(pk__in=[e.pk for e in events])}
    assert {name: (e.status, e.attempts, e.last_status_code) for name, e in states.items()} == {
        "N0": (WebhookStatus.DELIVERED, 1, 200),
        "N1": (WebhookStatus.PENDING, 1, 500),
        "N2": (WebhookStatus.DELIVERED, 1, 204),
    }
    assert states["N1"].next_attempt_at > timezone.now() + timedelta(seconds=25)
    assert sorted(WebhookAttempt.objects.values_list("status_code", flat=True)) == [200, 204, 500]


def test_a_claimed_event_is_not_sent_again_until_its_claim_lapses(hooked):
    """A worker that dies after claiming (before it records) leaves the event to be sent again a
    minute later: never lost, at least once, and never by two workers at the same moment."""
    from distribution.docking.webhooks import _claim

    (event,) = _events(hooked.site, 1)
    now = timezone.now()
    assert [claimed.pk for claimed in _claim(now=now, limit=10)] == [event.pk]
    receiver = Receiver(200)

    deliver_due_webhooks(now=now + timedelta(seconds=30), transport=receiver)
    assert receiver.received == []

    deliver_due_webhooks(now=now + timedelta(seconds=61), transport=receiver)
    assert len(receiver.received) == 1
    assert WebhookEvent.objects.get(pk=event.pk).status == WebhookStatus.DELIVERED


def test_the_task_after_a_commit_drains_other_due_events_with_its_own(hooked):
    from distribution.docking.webhooks import deliver_webhook_event_soon

    first, *others = _events(hooked.site, 4)
    receiver = Receiver()

    assert deliver_webhook_event_soon(event_pk=first.pk, transport=receiver) == 4
    assert deliver_webhook_event_soon(event_pk=others[0].pk, transport=receiver) == 0

    assert len(receiver.received) == 4
    assert {headers[api_signing.HEADER_EVENT_ID] for _url, _body, headers in receiver.received} == {
        event.event_id for event in [first, *others]
    }


class _Counting:
    """A local receiver over real HTTP/1.1: counts connections and requests; answers ``code``;
    closes the connection after each answer when ``close`` is set."""

    def __init__(self, code=200, close=False):
        import http.server
        import threading

        outer = self
        self.connections, self.requests = 0, []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                outer.connections += 1

            def do_POST(self):  # noqa: N802
                outer.requests.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                if code in (301, 302):
                    self.send_header("Location", "/elsewhere")
                if close:
                    self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks?x=1"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_transport_keeps_one_connection_for_many_posts_and_reopens_a_closed_one():
    from distribution.docking.webhooks import PooledTransport

    transport = PooledTransport()
    kept, closing = _Counting(), _Counting(close=True)
    try:
        answers = [transport(url=kept.url, body=b"{}", headers={}, timeout=5).status_code for _ in range(5)]
        again = [transport(url=closing.url, body=b"{}", headers={}, timeout=5).status_code for _ in range(3)]
    finally:
        kept.stop()
        closing.stop()

    assert answers == [200] * 5 and kept.connections == 1
    assert again == [200] * 3 and closing.connections == 3 and len(closing.requests) == 3


def test_a_redirect_is_not_followed_and_counts_as_not_delivered(hooked):
    moved = _Counting(code=302)
    try:
        from distribution.docking.services import set_webhook

        set_webhook(site=hooked.site, url=moved.url)
        (event,) = _events(hooked.site, 1)
        deliver_due_webhooks()
    finally:
        moved.stop()

    event.refresh_from_db()
    assert len(moved.requests) == 1
    assert event.status == WebhookStatus.PENDING and event.last_status_code == 302


def test_an_unreachable_receiver_is_logged_and_retried(hooked):
    from distribution.docking.services import set_webhook

    set_webhook(site=hooked.site, url="http://127.0.0.1:9/hooks")  # discard port: nothing listens
    (event,) = _events(hooked.site, 1)

    deliver_due_webhooks()

    event.refresh_from_db()
    attempt = WebhookAttempt.objects.get(event=event)
    assert attempt.status_code is None and "Unreachable" in attempt.error
    assert event.status == WebhookStatus.PENDING and event.attempts == 1
