"""The shop header links to 订单查询, on every page built on the shop's base template."""

import re

import pytest
from django.urls import reverse

from catalog.tests.test_shop_pages import games, steam  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def header_links(response) -> list[str]:
    header = re.search(r'<header class="site-header">(.*?)</header>', response.content.decode(), re.S)
    assert header, "the page has no shop header"
    return re.findall(r'href="([^"]+)"', header.group(1))


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_every_shop_page_header_links_to_the_order_lookup(client, steam, language):  # noqa: F811
    client.cookies["django_language"] = language
    lookup = reverse("postsale:order-lookup")
    for path in (
        reverse("catalog:shop-home"),
        reverse("catalog:product-detail", kwargs={"pk": steam.pk}),
        lookup,
    ):
        assert lookup in header_links(client.get(path)), path


def test_the_link_is_labelled_in_the_buyers_language(client):
    assert "订单查询" in client.get(reverse("catalog:shop-home")).content.decode()
    client.cookies["django_language"] = "en"
    page = client.get(reverse("catalog:shop-home")).content.decode()
    assert re.search(r'<header class="site-header">.*Order look-up.*</header>', page, re.S)
