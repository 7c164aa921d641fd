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


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_buyer_whose_order_waits_for_risk_review_is_told_so_then_gets_the_key(page, live_server, settings):
    from riskcontrol import rules as risk_rules
    from riskcontrol.models import RiskRule, RuleCode
    from orders.services.review import release_held_order

    # given a merchant whose rules send orders above ¥10 to review (estimated at 20 minutes)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.RISK_REVIEW_ESTIMATE_MINUTES = 20
    RiskRule.objects.update_or_create(
        code=RuleCode.ORDER_AMOUNT_LIMIT, defaults={"threshold": 10, "action": "review", "is_enabled": True}
    )
    risk_rules.clear_rule_cache()
    product = make_product(name="Steam 钱包 50")
    add_keys(product, 1, prefix="REVIEWED")

    # when a buyer pays for an order the rules held
    page.goto(f"{live_server.url}/products/{product.pk}/")
    page.fill("input[name=contact]", "buyer@example.com")
    page.fill("input[name=query_password]", "pass1234")
    page.click("[data-testid=buy]")
    page.wait_for_selector("[data-testid=cashier]")
    page.click("[data-testid=sandbox-pay]")

    # then the order page says it is being reviewed and for about how long, not "delivering"
    note = page.wait_for_selector("[data-testid=under-review]", timeout=20_000).inner_text()
    assert "安全审核" in note and "20 分钟" in note
    assert page.query_selector("[data-testid=waiting]") is None

    # and once risk staff approve it, the page refreshes itself and shows the key
    release_held_order(order=Order.objects.get(), actor=None, reason="核实")
    page.wait_for_selector("[data-testid=secret]", timeout=30_000)
    assert page.inner_text("[data-testid=secret]").startswith("REVIEWED-")
    risk_rules.clear_rule_cache()
