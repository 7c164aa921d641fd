"""The shop: on-shelf products by category, a product page, fresh prices and stock states."""

import pytest
from django.urls import reverse

from catalog import services
from catalog.models import CardKey, CardKeyBatch, Category, Product, ProductType

pytestmark = pytest.mark.django_db


@pytest.fixture
def games():
    return Category.objects.create(name="游戏点卡", slug="games")


@pytest.fixture
def steam(staff_user, games):
    product = services.create_product(
        actor=staff_user,
        category=games,
        name="Steam 50",
        product_type=ProductType.CARD_KEY,
        retail_price="48.00",
        low_stock_threshold=2,
        description='<p>秒发<script>alert(1)</script><a href="https://store.steampowered.com">官网</a></p>',
    )
    services.put_on_shelf(product=product, actor=staff_user)
    return product


def add_keys(product, count):
    """Stock rows only: these tests look at counts, never at secrets."""
    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    start = CardKey.objects.count()
    CardKey.objects.bulk_create(
        CardKey(product=product, batch=batch, secret_ciphertext=b"x", key_id="t1", fingerprint=f"shop-test-{start + n}")
        for n in range(count)
    )


def test_home_lists_on_shelf_products_by_category(client, staff_user, games, steam):
    hidden = services.create_product(
        actor=staff_user, category=games, name="未上架商品", product_type=ProductType.MANUAL, retail_price="1.00"
    )

    body = client.get(reverse("catalog:shop-home")).content.decode()

    assert "游戏点卡" in body and "Steam 50" in body and "¥48.00" in body
    assert hidden.name not in body


def test_product_page_shows_price_stock_and_safe_description(client, steam):
    add_keys(steam, 5)

    response = client.get(reverse("catalog:product-detail", args=[steam.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "¥48.00" in body
    assert "有货" in body and "剩余 5 件" in body
    assert "<script>" not in body.split("<main", 1)[1]
    assert 'href="https://store.steampowered.com" rel="noopener' in body


def test_stock_states(client, steam):
    url = reverse("catalog:product-detail", args=[steam.pk])
    assert "缺货" in client.get(url).content.decode()

    add_keys(steam, 2)

    assert "库存紧张" in client.get(url).content.decode()


def test_price_and_shelf_changes_show_at_once(client, staff_user, steam):
    url = reverse("catalog:product-detail", args=[steam.pk])
    assert "¥48.00" in client.get(url).content.decode()

    services.set_product_price(product=steam, actor=staff_user, retail_price="45.50")
    assert "¥45.50" in client.get(url).content.decode()

    services.take_off_shelf(product=steam, actor=staff_user, reason="调价")
    assert client.get(url).status_code == 404
    assert "Steam 50" not in client.get(reverse("catalog:shop-home")).content.decode()


def test_products_in_an_inactive_category_are_hidden(client, steam, games):
    games.is_active = False
    games.save()

    assert client.get(reverse("catalog:product-detail", args=[steam.pk])).status_code == 404


def test_unknown_product_is_404(client, db):
    assert client.get(reverse("catalog:product-detail", args=[999999])).status_code == 404


def test_bundle_stock_follows_its_card_key_components(client, staff_user, games, steam):
    bundle = services.create_product(
        actor=staff_user, category=games, name="玩家套餐", product_type=ProductType.BUNDLE, retail_price="60.00"
    )
    services.add_bundle_item(bundle=bundle, component=steam, quantity=2, actor=staff_user)
    services.put_on_shelf(product=bundle, actor=staff_user)
    url = reverse("catalog:product-detail", args=[bundle.pk])
    assert "已售罄" in client.get(url).content.decode()

    add_keys(steam, 6)

    assert "剩余 3 件" in client.get(url).content.decode()


def test_home_page_query_count_does_not_grow_with_products(client, staff_user, games, django_assert_max_num_queries):
    for number in range(12):
        product = services.create_product(
            actor=staff_user,
            category=games,
            name=f"卡 {number}",
            product_type=ProductType.CARD_KEY,
            retail_price="9.00",
        )
        services.put_on_shelf(product=product, actor=staff_user)

    with django_assert_max_num_queries(6):
        response = client.get(reverse("catalog:shop-home"))

    assert response.content.decode().count("product-card") == 12
    assert Product.objects.count() == 12
