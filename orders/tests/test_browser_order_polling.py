"""The order page's script polls on a schedule that costs the server little while a buyer waits
long, without slowing the buyer whose goods arrive in seconds (issue 15 §2, ADR 0014)."""

import pytest
from django.urls import reverse

from orders.services import order_access_token

from .factories import add_keys, buy, make_product

STEP_MS = 250


def _run(page, polls, *, seconds: float) -> None:
    """Let the page's clock run ``seconds`` in small steps, each poll answered before the next."""
    for _step in range(int(seconds * 1000 / STEP_MS)):
        page.clock.run_for(STEP_MS)
        page.wait_for_timeout(15)  # real time: the answer arrives and the script sets its timer


def _set_hidden(page, hidden: bool) -> None:
    page.evaluate(
        "hidden => { Object.defineProperty(document, 'hidden', {value: hidden, configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_order_page_polls_each_second_for_10_s_then_backs_off_and_asks_at_once_when_shown(page, live_server):
    # given an order waiting for payment, its page open in a browser whose clock the test runs
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "status.json" in request.url else None)
    page.clock.install()
    page.goto(
        live_server.url + reverse("orders:order-detail", args=[order.order_no]) + "?t=" + order_access_token(order)
    )

    # when the buyer waits 10 s, then a minute more
    _run(page, polls, seconds=10)
    first_ten = len(polls)
    _run(page, polls, seconds=60)

    # then the page asked about once a second at first, then every few seconds (not 60 times)
    assert 9 <= first_ten <= 11
    assert 10 <= len(polls) - first_ten <= 18

    # and a hidden page does not ask; shown again, it asks at once
    _set_hidden(page, True)
    before = len(polls)
    _run(page, polls, seconds=30)
    assert len(polls) == before
    _set_hidden(page, False)
    _run(page, polls, seconds=0.5)
    assert len(polls) == before + 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_order_page_shows_a_payment_in_place_and_reloads_only_when_the_goods_arrive(page, live_server):
    from orders.services import fulfil_order

    from .factories import pay

    # given an order waiting for payment, its page open in a browser
    product = make_product()
    add_keys(product, 1, prefix="INPLACE")
    order = buy(product)
    loads = []
    page.on("request", lambda request: loads.append(request.url) if request.resource_type == "document" else None)
    page.goto(
        live_server.url + reverse("orders:order-detail", args=[order.order_no]) + "?t=" + order_access_token(order)
    )
    page.wait_for_selector("[data-testid=pay]")
    page.evaluate("window.stillTheSamePage = true")

    # when the gateway's notification marks it paid (the worker has not delivered yet)
    pay(order)

    # then the page says so within a few seconds, without loading itself again
    page.wait_for_selector("[data-testid=waiting]", timeout=10_000)
    assert page.inner_text("[data-testid=order-status]") == "已支付"
    assert page.query_selector("[data-testid=pay]") is None
    assert page.evaluate("window.stillTheSamePage === true")
    assert len(loads) == 1

    # and when the key is delivered, the page loads again and shows it
    fulfil_order(order_id=order.pk)
    page.wait_for_selector("[data-testid=secret]", timeout=10_000)
    assert page.inner_text("[data-testid=secret]").startswith("INPLACE-")
    assert page.inner_text("[data-testid=order-status]") == "已完成"
    assert len(loads) == 2
