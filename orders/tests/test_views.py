"""The buyer's pages: checkout form, order page access, the notify endpoint, escaping."""

import re
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from catalog.models import ProductCustomField, ProductType
from orders.gateways import base as gateway_base
from orders.models import Order, OrderStatus, PaymentCallback, SandboxPayment
from orders.services import fulfil_order, order_access_token
from riskcontrol.services.cases import open_review_case

from .factories import add_keys, buy, make_product, pay

XSS = '<script>alert("x")</script>'


def _form(product, client, **overrides):
    page = client.get(reverse("catalog:product-detail", args=[product.pk]))
    token = re.search(r'name="checkout_token" value="([^"]+)"', page.content.decode()).group(1)
    data = {"checkout_token": token, "quantity": "1", "contact": "buyer@example.com", "query_password": "pass1234"}
    data.update(overrides)
    return data


def _client_transport(client):
    """Deliver the sandbox's HTTP notifications to the test client instead of the network."""

    def transport(method, url, headers, body):
        path = urlsplit(url).path  # the notify URL is on SITE_URL, whichever host took the order
        extra = {f"HTTP_{key.upper().replace('-', '_')}": value for key, value in headers.items() if key.lower() != "content-type"}
        response = client.post(path, data=body, content_type="application/json", **extra)
        return gateway_base.HttpResponse(response.status_code, {}, response.content)

    return transport


@pytest.mark.django_db
def test_a_buyer_checks_out_pays_at_the_sandbox_cashier_and_sees_the_key(
    client, settings, monkeypatch, django_capture_on_commit_callbacks
):
    # given a product on the shelf and background work running in-process
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.SANDBOX_NOTIFY_DUPLICATE_PROBABILITY = 1.0
    settings.SANDBOX_NOTIFY_OUT_OF_ORDER_PROBABILITY = 1.0
    monkeypatch.setattr(gateway_base, "urllib_transport", _client_transport(Client()))
    product = make_product()
    add_keys(product, 2, prefix="SECRET")

    # when the buyer submits the form, is sent to the cashier and clicks 支付成功
    response = client.post(reverse("orders:checkout", args=[product.pk]), _form(product, client))
    assert response.status_code == 302 and response.url.startswith("/pay/sandbox/SBX")
    cashier = client.get(response.url)
    assert "支付成功" in cashier.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        back = client.post(response.url, {"action": "pay"})

    # then the order page shows the delivered key, and the duplicate and stale notifications
    # changed nothing
    order = Order.objects.get()
    assert back.status_code == 302
    assert back.url.endswith(f"/orders/{order.order_no}/")
    page = client.get(back.url).content.decode()
    assert order.status == OrderStatus.COMPLETED
    assert "SECRET-" in page and "复制" in page
    assert PaymentCallback.objects.filter(outcome="paid").count() == 1
    assert PaymentCallback.objects.get(outcome="paid").times_received == 2
    assert PaymentCallback.objects.filter(outcome="ignored").count() == 1
    status = client.get(reverse("orders:order-status", args=[order.order_no])).json()
    assert status["status"] == "completed" and status["delivered"] == 1 and status["is_final"]


@pytest.mark.django_db
def test_a_refused_checkout_shows_the_errors_and_creates_nothing(client):
    product = make_product()
    add_keys(product, 1)

    response = client.post(
        reverse("orders:checkout", args=[product.pk]), _form(product, client, contact="nope", quantity="99")
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert "联系方式须为邮箱或 11 位中国大陆手机号" in body and "购买数量须在 1–10 件之间" in body
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_an_order_number_alone_never_shows_the_order(client):
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)
    fulfil_order(order_id=order.pk)
    url = reverse("orders:order-detail", args=[order.order_no])

    assert client.get(url).status_code == 404
    assert client.get(url + "?t=forged").status_code == 404
    assert client.get(reverse("orders:order-status", args=[order.order_no])).status_code == 404
    linked = client.get(url + "?t=" + order_access_token(order))
    assert linked.status_code == 200 and "KEY-" in linked.content.decode()
    # the signed link also opens the page's polling for this browser
    assert client.get(reverse("orders:order-status", args=[order.order_no])).status_code == 200


@pytest.mark.django_db
def test_script_in_custom_fields_is_escaped_wherever_it_is_shown(client, settings, monkeypatch):
    product = make_product(product_type=ProductType.MANUAL)
    ProductCustomField.objects.create(product=product, name="note", label="备注", is_required=False)

    refused = client.post(
        reverse("orders:checkout", args=[product.pk]), _form(product, client, field_note=XSS, contact=XSS)
    )
    assert XSS not in refused.content.decode() and "&lt;script&gt;" in refused.content.decode()

    client.post(reverse("orders:checkout", args=[product.pk]), _form(product, client, field_note=XSS))
    order = Order.objects.get()
    assert order.buyer_fields == {"note": XSS}
    page = client.get(reverse("orders:order-detail", args=[order.order_no])).content.decode()
    assert XSS not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<dt>备注</dt>" in page


@pytest.mark.django_db
def test_the_notify_endpoint_answers_fail_to_a_forgery_and_404_to_an_unknown_gateway(client):
    url = reverse("orders:payment-notify", args=["sandbox"])

    forged = client.post(url, data=b'{"out_trade_no":"K1"}', content_type="application/json", HTTP_X_SANDBOX_SIGNATURE="00")

    assert (forged.status_code, forged.content) == (400, b"fail")
    assert PaymentCallback.objects.get().outcome == "rejected"
    assert client.post(reverse("orders:payment-notify", args=["paypal"]), data=b"{}", content_type="application/json").status_code == 404
    assert client.get(url).status_code == 405


@pytest.mark.django_db
def test_a_referral_link_sets_a_cookie_that_checkout_snapshots(client, monkeypatch):
    monkeypatch.setattr(
        "distribution.services.attribution_for_referral",
        lambda *, code: {"distributor_id": 42, "chain": [42], "link": code},
    )
    product = make_product()
    add_keys(product, 1)

    client.get("/?ref=AGENT42&ch=xiaohongshu")
    client.post(reverse("orders:checkout", args=[product.pk]), _form(product, client))

    order = Order.objects.get()
    assert (order.distributor_id, order.channel, order.attribution["link"]) == (42, "xiaohongshu", "AGENT42")


@pytest.mark.django_db
def test_a_buyer_who_paid_but_lost_the_notification_can_ask_for_the_result(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    product = make_product()
    add_keys(product, 1)
    response = client.post(reverse("orders:checkout", args=[product.pk]), _form(product, client))
    from orders.gateways.sandbox import complete_sandbox_payment
    from orders.models import SandboxPayment

    complete_sandbox_payment(trade_no=SandboxPayment.objects.get().trade_no, succeeded=True)  # notifications lost
    order = Order.objects.get()

    client.post(reverse("orders:order-sync", args=[order.order_no]))

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert PaymentCallback.objects.get().source == "query"
    assert response.status_code == 302


@pytest.mark.django_db
def test_with_the_sandbox_disabled_its_cashier_and_notifications_are_gone(client, settings):
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    from .factories import start_sandbox

    payment = start_sandbox(order)
    settings.SANDBOX_GATEWAY_ENABLED = False

    assert client.get(reverse("orders:sandbox-cashier", args=[payment.trade_no])).status_code == 404
    assert client.post(reverse("orders:sandbox-cashier", args=[payment.trade_no]), {"action": "pay"}).status_code == 404
    assert client.post(reverse("orders:payment-notify", args=["sandbox"]), data=b"{}", content_type="application/json").status_code == 404
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.django_db
def test_a_gateway_that_answers_with_a_qr_code_gets_a_scan_page(client, monkeypatch):
    from orders.gateways import PaymentStart

    class QrGateway:
        code = "wechatpay"

        def start_payment(self, request):
            return PaymentStart(qr_text="weixin://wxpay/bizpayurl?pr=abc123")

    monkeypatch.setattr("orders.services.payments.get_gateway", lambda code: QrGateway())
    product = make_product()
    add_keys(product, 1)

    response = client.post(reverse("orders:checkout", args=[product.pk]), _form(product, client))

    body = response.content.decode()
    assert response.status_code == 200 and "扫码支付" in body and "<svg" in body


@pytest.mark.django_db
def test_the_embedded_housekeeping_expires_unpaid_orders():
    from datetime import timedelta

    from django.utils import timezone

    from orders.middleware import run_housekeeping

    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    run_housekeeping()

    assert Order.objects.get(pk=order.pk).status == OrderStatus.EXPIRED


@pytest.mark.django_db
def test_the_addresses_given_to_the_gateway_are_the_sites_not_the_answering_hosts(client, settings):
    # given a site behind a proxy, and a checkout that reached one host by its own name
    settings.SITE_URL = "https://shop.example.com"
    product = make_product()
    add_keys(product, 1)

    response = client.post(
        reverse("orders:checkout", args=[product.pk]), _form(product, client), HTTP_HOST="localhost"
    )

    # then the gateway keeps URLs on the site's public address, which outlive that host
    assert response.status_code == 302
    payment = SandboxPayment.objects.get()
    assert payment.notify_url == "https://shop.example.com/pay/notify/sandbox/"
    assert payment.return_url.startswith("https://shop.example.com/orders/")


@pytest.mark.django_db
def test_a_checkout_token_gives_its_order_back_only_to_the_browser_that_placed_it(client):
    # given a buyer who placed (and was delivered) an order with the form's token
    product = make_product()
    add_keys(product, 3, prefix="SECRET")
    form = _form(product, client)
    client.post(reverse("orders:checkout", args=[product.pk]), form)
    theirs = Order.objects.get()
    pay(theirs)
    fulfil_order(order_id=theirs.pk)

    # when the buyer submits the same form again, they get the same order (a double submit)
    again = client.post(reverse("orders:checkout", args=[product.pk]), form)
    assert again.url.endswith(f"/orders/{theirs.order_no}/") and Order.objects.count() == 1

    # and when a second browser posts the same token, it gets an order of its own, never theirs
    other = Client()
    _form(product, other)  # the second browser opened the shop too
    response = other.post(
        reverse("orders:checkout", args=[product.pk]), dict(form, contact="other@example.com")
    )
    assert Order.objects.count() == 2
    mine = Order.objects.exclude(pk=theirs.pk).get()
    assert mine.contact == "other@example.com" and mine.status == OrderStatus.PENDING_PAYMENT
    assert theirs.order_no not in response.get("Location", "")
    page = other.get(reverse("orders:order-detail", args=[theirs.order_no]))
    assert page.status_code == 404 and "SECRET-" not in page.content.decode()
    assert other.get(reverse("orders:order-status", args=[theirs.order_no])).status_code == 404


@pytest.mark.django_db
def test_a_paid_order_held_for_risk_review_tells_the_buyer_it_is_being_reviewed_and_for_how_long(client, settings):
    # given a paid order that checkout sent to risk review (the merchant expects 45 minutes)
    settings.RISK_REVIEW_ESTIMATE_MINUTES = 45
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    Order.objects.filter(pk=order.pk).update(attribution={"risk": "review"})
    order.refresh_from_db()
    open_review_case(order=order)
    pay(order)
    fulfil_order(order_id=order.pk)  # held: nothing is sent
    url = reverse("orders:order-detail", args=[order.order_no])

    page = client.get(url + "?t=" + order_access_token(order)).content.decode()
    status = client.get(reverse("orders:order-status", args=[order.order_no])).json()

    # then the page and its status say so, with the estimate, instead of "delivering"
    assert "正在进行安全审核" in page and "45 分钟" in page
    assert "正在为您发货" not in page
    assert status["is_under_review"] is True and status["review_estimate_minutes"] == 45
    assert "正在进行安全审核" in status["message"]


@pytest.mark.django_db
def test_an_ordinary_paid_order_is_not_said_to_be_under_review(client):
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)  # paid, not fulfilled yet

    status = client.get(
        reverse("orders:order-status", args=[order.order_no]) + "?t=" + order_access_token(order)
    ).json()

    assert status["is_under_review"] is False and status["review_estimate_minutes"] is None
