"""The demo catalog shows every product feature and can be loaded twice."""

import pytest

from catalog.demo import load_catalog_demo
from catalog.models import BundleItem, Product, ProductCustomField, ProductImage, ProductType

pytestmark = pytest.mark.django_db


def test_demo_catalog_is_rich_and_idempotent(owner_user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path

    load_catalog_demo(owner=owner_user)
    load_catalog_demo(owner=owner_user)

    assert Product.objects.count() == 4
    top_up = Product.objects.get(product_type=ProductType.DIRECT_RECHARGE)
    assert top_up.recharge_target_rule == "mobile"
    assert ProductCustomField.objects.count() == 2
    assert BundleItem.objects.count() == 2
    image = ProductImage.objects.get()
    assert image.thumbnail and (tmp_path / image.thumbnail.name).exists()
    assert "<a href=" in Product.objects.get(product_type=ProductType.CARD_KEY).description
