"""Chinese by default, English one click away, in the console and in the shop."""

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

pytestmark = pytest.mark.django_db


def switch_to_english(client, next_url):
    return client.post(reverse("set_language"), {"language": "en", "next": next_url})


def test_compiled_english_catalog_exists_and_loads():
    mo_file = Path(settings.BASE_DIR) / "locale" / "en" / "LC_MESSAGES" / "django.mo"
    assert mo_file.exists()

    with translation.override("en"):
        assert translation.gettext("商品") == "Product"
        assert translation.gettext("Kamen 商户后台") == "Kamen merchant console"


def test_admin_is_chinese_by_default_and_english_after_switching(client, staff_user):
    client.force_login(staff_user)
    chinese = client.get(reverse("admin:index")).content.decode()
    assert "经营概览" in chinese and "常用操作" in chinese

    response = switch_to_english(client, reverse("admin:index"))
    english = client.get(response.url).content.decode()

    assert response.status_code == 302
    assert "Business overview" in english and "Shortcuts" in english
    assert "经营概览" not in english


def test_shop_switches_to_english(client):
    assert "全部商品" in client.get(reverse("catalog:shop-home")).content.decode()

    switch_to_english(client, "/")
    english = client.get(reverse("catalog:shop-home")).content.decode()

    assert "All products" in english
    assert 'lang="en"' in english


def test_service_errors_are_translated(staff_user):
    from django.core.exceptions import ValidationError

    from catalog import services
    from catalog.models import Category

    category = Category.objects.create(name="游戏", slug="games")
    with translation.override("en"), pytest.raises(ValidationError) as raised:
        services.create_product(
            actor=staff_user, category=category, name="x", product_type="card_key", retail_price="1.001"
        )

    assert raised.value.message_dict["retail_price"] == ["Retail price can have at most two decimal places (fen)"]
