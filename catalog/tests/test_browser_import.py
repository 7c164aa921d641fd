from decimal import Decimal

import pytest

from catalog.models import CardKey, Category, Product, ProductType


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_operator_imports_card_keys_in_a_real_browser(logged_in_page, live_server, settings):
    # The live server runs jobs in-process after commit, as the embedded mode does.
    settings.BACKGROUND_IN_PROCESS = True
    category = Category.objects.create(name="点卡", slug="cards")
    product = Product.objects.create(
        category=category, name="Steam 钱包 50", product_type=ProductType.CARD_KEY, retail_price=Decimal("48.00")
    )
    page = logged_in_page

    page.goto(f"{live_server.url}/console/imports/new/")
    page.select_option("#id_product", str(product.pk))
    page.fill("#id_text", "NO1,BROWSER-SECRET-1\nNO2,BROWSER-SECRET-2\nNO1,BROWSER-SECRET-1")
    page.select_option("#id_separator", ",")
    page.click("input[type=submit]")

    page.wait_for_selector("#confirm-import")
    assert "与第 1 行重复" in page.inner_text("#rejected-lines")
    assert "BROWSER-SECRET" not in page.content()

    page.click("#confirm-import")
    page.wait_for_selector("#import-status[data-status=completed]")
    assert page.inner_text("#imported-count") == "2"
    assert CardKey.objects.filter(product=product).count() == 2
