import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import CardKey, CardKeyBatch, CardKeyStatus, Category, DeliveryOrder, Product, ProductType
from catalog.services import InsufficientStock, claim_card_keys
from kamen import crypto


def make_product(delivery_order=DeliveryOrder.OLDEST_FIRST) -> Product:
    category = Category.objects.create(name="点卡", slug=f"cards-{Category.objects.count()}")
    return Product.objects.create(
        category=category,
        name="Steam 50",
        product_type=ProductType.CARD_KEY,
        retail_price=Decimal("48.00"),
        delivery_order=delivery_order,
    )


def stock(product: Product, count: int, *, expires_at=None, prefix="K") -> list[CardKey]:
    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    keys = []
    for number in range(count):
        secret = f"{prefix}-{product.pk}-{number}"
        key_id, blob = crypto.encrypt(secret)
        keys.append(
            CardKey(
                product=product,
                batch=batch,
                secret_ciphertext=blob,
                key_id=key_id,
                fingerprint=crypto.blind_index(secret),
                expires_at=expires_at,
            )
        )
    return CardKey.objects.bulk_create(keys)


@pytest.mark.django_db
def test_claimed_keys_are_sold_oldest_first():
    product = make_product()
    first, second, _third = stock(product, 3)

    claimed = claim_card_keys(product=product, quantity=2)

    assert [key.pk for key in claimed] == [first.pk, second.pk]
    assert CardKey.objects.filter(product=product, status=CardKeyStatus.SOLD).count() == 2


@pytest.mark.django_db
def test_first_expiring_keys_go_first_and_expired_keys_never_go():
    product = make_product(DeliveryOrder.FIRST_EXPIRING)
    now = timezone.now()
    (expired,) = stock(product, 1, expires_at=now - timedelta(days=1), prefix="old")
    (late,) = stock(product, 1, expires_at=now + timedelta(days=30), prefix="late")
    (soon,) = stock(product, 1, expires_at=now + timedelta(days=1), prefix="soon")

    claimed = claim_card_keys(product=product, quantity=2)

    assert [key.pk for key in claimed] == [soon.pk, late.pk]
    assert CardKey.objects.get(pk=expired.pk).status == CardKeyStatus.AVAILABLE


@pytest.mark.django_db
def test_too_few_keys_claims_none():
    product = make_product()
    stock(product, 2)

    with pytest.raises(InsufficientStock, match="3 card keys wanted, 2 available"):
        claim_card_keys(product=product, quantity=3)

    assert CardKey.objects.filter(status=CardKeyStatus.AVAILABLE).count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_never_get_the_same_key():
    product = make_product()
    stock(product, 120)
    claimed: list[int] = []
    failures: list[int] = []
    lock = threading.Lock()

    def buyer():
        try:
            for _ in range(6):
                try:
                    keys = claim_card_keys(product=product, quantity=1)
                except InsufficientStock:
                    with lock:
                        failures.append(1)
                    continue
                with lock:
                    claimed.extend(key.pk for key in keys)
        finally:
            connection.close()

    threads = [threading.Thread(target=buyer) for _ in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(claimed) == 120
    assert len(set(claimed)) == 120
    assert len(failures) == 25 * 6 - 120
    assert CardKey.objects.filter(status=CardKeyStatus.SOLD).count() == 120
