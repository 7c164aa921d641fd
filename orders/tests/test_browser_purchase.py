import pytest

from orders.models import Order, OrderStatus

from .factories import add_keys, make_product


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_buyer_buys_a_card_key_through_the_sandbox_cashier(page, live_server, settings):
    # given a card-key product in stock, background work in-process (the embedded mode)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.SANDBOX_NOTIFY_DUPLICATE_PROBABILITY = 0.5
    product = make_product(name="Steam 钱包 50")
    add_keys(product, 3, prefix="BROWSER")

    # when a buyer fills in the form on the product page and pays at the sandbox cashier
    page.goto(f"{live_server.url}/products/{product.pk}/")
    page.fill("input[name=contact]", "buyer@example.com")
    page.fill("input[name=query_password]", "pass1234")
    page.click("[data-testid=buy]")
    page.wait_for_selector("[data-testid=cashier]")
    assert "¥48.00" in page.inner_text(".cashier-amount")
    page.click("[data-testid=sandbox-pay]")

    # then the order page shows the key (after refreshing itself if needed)
    page.wait_for_selector("[data-testid=secret]", timeout=20_000)
    assert page.inner_text("[data-testid=secret]").startswith("BROWSER-")
    assert page.inner_text("[data-testid=order-status]") == "已完成"
    assert Order.objects.get().status == OrderStatus.COMPLETED
