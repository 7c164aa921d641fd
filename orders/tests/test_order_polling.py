"""The order page's polling costs next to nothing: a signed status URL, one query, no session
(issue 15 §2). What it opens is the status of one order, never the goods."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.models import Order, OrderDelivery
from orders.selectors import order_status_url
from orders.services import fulfil_order, order_access_token
from riskcontrol.models import RiskSignal
from riskcontrol.services.cases import open_review_case

from .factories import add_keys, buy, make_product, pay


def _status_url_on_the_page(order) -> str:
    page = Client().get(reverse("orders:order-detail", args=[order.order_no]) + "?t=" + order_access_token(order))
    return re.search(r'data-status-url="([^"]+)"', page.content.decode()).group(1)


@pytest.mark.django_db
def test_the_status_url_on_the_order_page_answers_a_browser_without_session_in_one_query():
    # given an order paid and delivered, and the status URL its page polls
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)
    fulfil_order(order_id=order.pk)
    url = _status_url_on_the_page(order)

    # when a poll arrives without any cookie
    with CaptureQueriesContext(connection) as queries:
        response = Client().get(url)

    # then it answers the status in one query, and sets no session
    assert response.status_code == 200
    assert response.json() == {
        "order_no": order.order_no,
        "status": "completed",
        "status_label": "已完成",
        "is_final": True,
        "is_paid": True,
        "delivered": 1,
        "is_under_review": False,
        "review_estimate_minutes": None,
        "message": "",
    }
    assert len(queries) == 1
    assert "sessionid" not in response.cookies
    assert "KEY-" not in response.content.decode()


@pytest.mark.django_db
def test_the_status_follows_payment_and_delivery():
    product = make_product()
    add_keys(product, 2)
    order = buy(product, quantity=2)
    url = order_status_url(order_no=order.order_no)
    client = Client()

    before = client.get(url).json()
    pay(order)
    paid = client.get(url).json()
    fulfil_order(order_id=order.pk)
    delivered = client.get(url).json()
    OrderDelivery.objects.filter(order=order).update(is_voided=True)
    voided = client.get(url).json()

    assert (before["status"], before["is_paid"], before["delivered"]) == ("pending_payment", False, 0)
    assert (paid["status"], paid["is_paid"], paid["is_final"]) == ("paid", True, False)
    assert delivered["delivered"] == 2 and delivered["is_final"]
    assert voided["delivered"] == 0


@pytest.mark.django_db
def test_a_forged_or_borrowed_status_signature_is_refused_and_counted_as_guessing():
    # given two orders and the status URL of the first
    product = make_product()
    add_keys(product, 2)
    first, second = buy(product), buy(product)
    signature = order_status_url(order_no=first.order_no).split("?s=")[1]
    second_url = reverse("orders:order-status", args=[second.order_no])

    # when a browser tries the first order's signature on the second, a forged one, and a number
    # that does not exist
    answers = [
        Client().get(f"{second_url}?s={signature}", REMOTE_ADDR="203.0.113.9").status_code,
        Client().get(f"{second_url}?s=forged", REMOTE_ADDR="203.0.113.9").status_code,
        Client().get("/orders/K00000000000000000000/status.json?s=forged", REMOTE_ADDR="203.0.113.9").status_code,
    ]

    # then each is a 404 and counts against the address as page guessing
    assert answers == [404, 404, 404]
    assert RiskSignal.objects.filter(ip="203.0.113.9").count() == 3


@pytest.mark.django_db
def test_the_status_url_still_answers_the_session_that_placed_the_order(client):
    """Without the signature (an order page loaded before this change), the session decides."""
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    plain = reverse("orders:order-status", args=[order.order_no])

    refused = client.get(plain).status_code
    client.get(reverse("orders:order-detail", args=[order.order_no]) + "?t=" + order_access_token(order))
    allowed = client.get(plain)

    assert refused == 404
    assert allowed.status_code == 200 and allowed.json()["status"] == "pending_payment"


@pytest.mark.django_db
def test_a_poll_from_the_browser_that_placed_the_order_does_not_read_its_session(client):
    # given a browser with a session (it opened the order's page through its link)
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    page = client.get(reverse("orders:order-detail", args=[order.order_no]) + "?t=" + order_access_token(order))
    url = re.search(r'data-status-url="([^"]+)"', page.content.decode()).group(1)
    assert client.cookies.get("sessionid")

    # when its page polls
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)

    # then only the status is read: no session, no user
    assert response.status_code == 200
    assert [query["sql"] for query in queries if "django_session" in query["sql"]] == []
    assert len(queries) == 1


@pytest.mark.django_db
def test_the_signed_poll_of_an_order_held_for_risk_review_says_it_is_being_reviewed(settings):
    # given a paid order that checkout sent to risk review, polled by its signed status URL
    settings.RISK_REVIEW_ESTIMATE_MINUTES = 20
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    Order.objects.filter(pk=order.pk).update(attribution={"risk": "review"})
    order.refresh_from_db()
    open_review_case(order=order)
    pay(order)
    fulfil_order(order_id=order.pk)  # held: nothing is sent

    status = Client().get(_status_url_on_the_page(order)).json()

    # then the poll tells the buyer it is under review, as the page does, not "delivering"
    assert status["is_under_review"] is True and status["review_estimate_minutes"] == 20
    assert "正在进行安全审核" in status["message"] and status["delivered"] == 0
