from decimal import Decimal

import pytest
from django.core import mail

from catalog.models import CardKey, CardKeyBatch, Category, Product, ProductType, StockAlert
from catalog.services import check_stock_levels
from catalog.tasks import check_stock_levels_task
from kamen import crypto


def make_product(threshold=2) -> Product:
    category, _ = Category.objects.get_or_create(slug="cards", defaults={"name": "点卡"})
    return Product.objects.create(
        category=category,
        name=f"Steam {Product.objects.count()}",
        product_type=ProductType.CARD_KEY,
        retail_price=Decimal("48.00"),
        is_on_shelf=True,
        low_stock_threshold=threshold,
    )


def add_keys(product, count):
    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    for number in range(count):
        secret = f"{product.pk}-{CardKey.objects.count()}-{number}"
        key_id, blob = crypto.encrypt(secret)
        CardKey.objects.create(
            product=product, batch=batch, secret_ciphertext=blob, key_id=key_id, fingerprint=crypto.blind_index(secret)
        )


@pytest.mark.django_db
def test_low_stock_opens_one_alert_and_emails_once(settings):
    settings.MERCHANT_ALERT_EMAILS = ["boss@example.com"]
    product = make_product(threshold=2)
    add_keys(product, 2)

    check_stock_levels()
    check_stock_levels()

    alert = StockAlert.objects.get()
    assert (alert.product, alert.available_count, alert.resolved_at) == (product, 2, None)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["boss@example.com"]
    assert product.name in mail.outbox[0].subject


@pytest.mark.django_db
def test_refilled_stock_resolves_the_alert():
    product = make_product(threshold=2)
    check_stock_levels()

    add_keys(product, 5)
    check_stock_levels()

    assert StockAlert.objects.get().resolved_at is not None


@pytest.mark.django_db
def test_the_beat_task_runs_the_check():
    make_product(threshold=1)

    check_stock_levels_task.apply()

    assert StockAlert.objects.count() == 1
