"""In chromium, under the CSP without 'unsafe-inline': the moved scripts still run (the order
page follows its status, the copy button copies, the language switcher submits, the admin's
select-all works) and the browser reports no violation."""

import pytest
from playwright.sync_api import expect

from orders.models import DeliveryKind, Order, OrderDelivery, OrderStatus
from orders.services.access import signed_order_token
from orders.tests.factories import add_keys
from orders.tests.postsale_helpers import make_order
from riskcontrol.models import RiskSignal

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def watch_csp(page) -> list[str]:
    violations = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return violations


def test_the_order_page_follows_its_status_under_the_csp(page, live_server):
    order = make_order(status=OrderStatus.PAID)
    violations = watch_csp(page)

    page.goto(f"{live_server.url}/orders/{order.order_no}/?t={signed_order_token(order)}")
    assert page.locator("[data-testid=waiting]").is_visible()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.FAILED)

    page.wait_for_selector("[data-testid=order][data-status=failed]", timeout=10_000)
    assert violations == []


def test_an_order_page_whose_session_expired_keeps_its_status_and_never_counts_as_guessing(page, live_server):
    """A refused status request counts against the browser as page guessing; a page left open
    past its session must not be refused (and get its own device blocked): it polls a URL
    signed for its order, which needs no session."""
    order = make_order(status=OrderStatus.PAID)
    page.goto(f"{live_server.url}/orders/{order.order_no}/?t={signed_order_token(order)}")
    assert page.locator("[data-testid=waiting]").is_visible()
    page.context.clear_cookies()  # the session that granted the page is gone
    asked = []
    page.on("response", lambda response: asked.append(response.status) if "/status" in response.url else None)

    page.wait_for_timeout(4_000)  # the page asks every second while it waits

    assert len(asked) >= 2 and set(asked) == {200}
    assert not RiskSignal.objects.exists()


def test_the_copy_button_and_the_language_switcher_run_under_the_csp(page, live_server):
    order = make_order(status=OrderStatus.COMPLETED)
    key = add_keys(order.product, 1, prefix="CSP")[0]
    OrderDelivery.objects.create(order=order, product=order.product, kind=DeliveryKind.CARD_KEY, card_key=key)
    violations = watch_csp(page)

    page.goto(f"{live_server.url}/orders/{order.order_no}/?t={signed_order_token(order)}")
    page.locator("button.copy").last.click()
    # the label changes when the clipboard's promise settles: wait for it, do not race it
    expect(page.locator("button.copy").last).to_have_text("已复制", timeout=5_000)

    with page.expect_navigation():
        page.select_option("#language-select", "en")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert violations == []


def test_admin_actions_work_under_the_csp(logged_in_page, live_server):
    make_order(status=OrderStatus.COMPLETED)
    make_order(status=OrderStatus.COMPLETED)
    page = logged_in_page
    violations = watch_csp(page)

    page.goto(f"{live_server.url}/admin/orders/order/")
    page.check("#action-toggle")

    assert page.locator("input.action-select:checked").count() == 2
    assert "2" in page.inner_text(".action-counter")
    assert violations == []
