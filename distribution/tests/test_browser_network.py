"""In chromium: a distributor joins through an invite link, opens the portal, generates a
poster, opens a sub-store and shares its link; a buyer lands on it with the sub-store price and
goes on to the shop's product page with the referral attached (the checkout on that page comes
from the orders pipeline)."""

from decimal import Decimal

import pytest

from distribution.models import AdmissionMode, Distributor, ReferralLink

from .factories import DistributorFactory, GradeFactory, ProductFactory


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_distributor_joins_makes_a_poster_and_shares_a_sub_store(
    page, browser, live_server, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    GradeFactory(
        name="推广员",
        rank=1,
        is_default=True,
        admission_mode=AdmissionMode.AUTOMATIC,
        may_open_sub_store=True,
    )
    inviter = DistributorFactory(grade=GradeFactory(name="总代", rank=4))
    product = ProductFactory(
        name="优酷VIP月卡",
        retail_price=Decimal("100.00"),
        max_resale_price=Decimal("120.00"),
    )

    # Join through the invite link.
    page.goto(f"{live_server.url}/agent/join/{inviter.invite_code}/")
    page.fill("#id_username", "xiaomei")
    page.fill("#id_password", "Browser-pass-2026")
    page.fill("#id_display_name", "小美")
    page.fill("#id_region", "成都")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/agent/")
    assert page.inner_text("[data-figure=team]") == "0"
    joined = Distributor.objects.get(user__username="xiaomei")
    assert joined.parent_id == inviter.pk

    # Generate a poster.
    page.click("text=海报")
    poster = page.request.get(
        f"{live_server.url}"
        + page.get_attribute(f"[data-poster='{product.pk}']", "href")
    )
    assert poster.ok
    assert poster.headers["content-type"] == "image/png"
    assert poster.body()[:4] == b"\x89PNG"

    # Open a sub-store and price the product.
    page.goto(f"{live_server.url}/agent/store/")
    page.fill("#id_name", "小美的会员铺")
    page.fill("#id_slug", "xiaomei")
    page.click("text=开设分站")
    page.wait_for_selector("#share-url")
    page.fill("input[name=price]", "150")
    page.click("form:has(input[name=price]) button")
    assert "不能高于商户限价 ¥120.00" in page.content()
    page.fill("input[name=price]", "108")
    page.click("form:has(input[name=price]) button")
    page.wait_for_selector("text=已保存")
    share_url = page.inner_text("#share-url")

    # A buyer opens the shared link in their own browser.
    buyer = browser.new_context(locale="zh-CN")
    buyer_page = buyer.new_page()
    buyer_page.goto(share_url)
    assert "小美的会员铺" in buyer_page.content()
    buyer_page.click("text=优酷VIP月卡")
    assert buyer_page.inner_text("#sub-store-price") == "¥108.00"
    buyer_page.click("text=立即购买")
    link = ReferralLink.objects.get(sub_store__slug="xiaomei")
    buyer_page.wait_for_url(f"**/products/{product.pk}/?ref={link.code}*")
    buyer.close()
