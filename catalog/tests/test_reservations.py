import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import (
    CardKey,
    CardKeyBatch,
    CardKeyStatus,
    Category,
    Product,
    ProductType,
)
from catalog.services import (
    InsufficientStock,
    release_card_key_reservation,
    release_expired_reservations,
    reserve_card_keys,
    sell_reserved_card_keys,
)
from kamen import crypto


def make_stock(count: int) -> Product:
    category = Category.objects.create(name="点卡", slug=f"r-{Category.objects.count()}")
    product = Product.objects.create(
        category=category, name="Steam 50", product_type=ProductType.CARD_KEY, retail_price=Decimal("48.00")
    )
    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    keys = []
    for number in range(count):
        key_id, blob = crypto.encrypt(f"S-{number}")
        keys.append(
            CardKey(product=product, batch=batch, secret_ciphertext=blob, key_id=key_id, fingerprint=crypto.blind_index(f"{product.pk}-{number}"))
        )
    CardKey.objects.bulk_create(keys)
    return product


@pytest.mark.django_db
def test_a_reservation_is_all_or_nothing_and_topped_up_not_doubled():
    product = make_stock(3)
    until = timezone.now() + timedelta(minutes=15)

    with pytest.raises(InsufficientStock):
        reserve_card_keys(product=product, quantity=4, reference="K1", until=until)
    assert not CardKey.objects.filter(status=CardKeyStatus.RESERVED).exists()

    reserve_card_keys(product=product, quantity=2, reference="K1", until=until)
    reserve_card_keys(product=product, quantity=2, reference="K1", until=until)
    assert CardKey.objects.filter(status=CardKeyStatus.RESERVED, reserved_for="K1").count() == 2


@pytest.mark.django_db
def test_selling_releasing_and_expiring_reservations():
    product = make_stock(4)
    now = timezone.now()
    reserve_card_keys(product=product, quantity=1, reference="SOLD", until=now + timedelta(minutes=5))
    reserve_card_keys(product=product, quantity=1, reference="CANCELLED", until=now + timedelta(minutes=5))
    reserve_card_keys(product=product, quantity=1, reference="PAID", until=None)
    reserve_card_keys(product=product, quantity=1, reference="LAPSED", until=now - timedelta(seconds=1))

    sold = sell_reserved_card_keys(reference="SOLD")
    assert release_card_key_reservation(reference="CANCELLED") == 1
    assert release_expired_reservations() == 1

    assert [key.sold_to for key in sold] == ["SOLD"]
    assert CardKey.objects.get(sold_to="SOLD").status == CardKeyStatus.SOLD
    assert CardKey.objects.filter(status=CardKeyStatus.AVAILABLE).count() == 2
    assert CardKey.objects.get(status=CardKeyStatus.RESERVED).reserved_for == "PAID"
    assert sell_reserved_card_keys(reference="SOLD") == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_never_share_a_key():
    product = make_stock(30)
    until = timezone.now() + timedelta(minutes=15)
    failures = []

    def reserve(index):
        try:
            reserve_card_keys(product=product, quantity=4, reference=f"K{index}", until=until)
        except InsufficientStock:
            failures.append(index)
        finally:
            connection.close()

    threads = [threading.Thread(target=reserve, args=(index,)) for index in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # all or nothing: every successful reservation holds exactly its four keys, and no more
    # than the stock was ever held (SKIP LOCKED may refuse a buyer while others hold keys)
    succeeded = 10 - len(failures)
    assert len(failures) >= 3
    reserved = CardKey.objects.filter(status=CardKeyStatus.RESERVED)
    assert reserved.count() == 4 * succeeded
    assert reserved.values("reserved_for").distinct().count() == succeeded


@pytest.mark.django_db
def test_a_lapsed_reservation_is_taken_by_the_next_buyer_even_without_the_expiry_job():
    product = make_stock(1)
    reserve_card_keys(product=product, quantity=1, reference="ABANDONED", until=timezone.now() - timedelta(seconds=1))

    reserve_card_keys(product=product, quantity=1, reference="NEXT", until=timezone.now() + timedelta(minutes=15))

    assert CardKey.objects.get().reserved_for == "NEXT"
