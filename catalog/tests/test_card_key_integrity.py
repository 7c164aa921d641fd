"""The database keeps every card key tied to a real batch of the same product (one composite
foreign key does both jobs), whatever code path writes the row."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from catalog.models import CardKey, CardKeyBatch, Category, Product, ProductType

pytestmark = pytest.mark.django_db(transaction=True)  # deferred constraints are checked at commit


@pytest.fixture
def products():
    category = Category.objects.create(name="点卡", slug="cards")
    return [
        Product.objects.create(
            category=category, name=name, product_type=ProductType.CARD_KEY, retail_price=Decimal("1")
        )
        for name in ("Steam 50", "Steam 100")
    ]


def _key(product, batch_id, fingerprint="f" * 64):
    return CardKey.objects.create(
        product=product, batch_id=batch_id, secret_ciphertext=b"x", key_id="k", fingerprint=fingerprint
    )


def test_a_key_in_a_batch_of_its_own_product_is_stored(products):
    batch = CardKeyBatch.objects.create(product=products[0])

    with transaction.atomic():
        _key(products[0], batch.pk)

    assert CardKey.objects.filter(batch=batch, product=products[0]).count() == 1


@pytest.mark.parametrize("case", ["other product than its batch", "missing batch"])
def test_the_database_refuses_a_key_outside_a_batch_of_its_product(products, case):
    batch = CardKeyBatch.objects.create(product=products[0])

    with pytest.raises(IntegrityError), transaction.atomic():
        _key(products[1], batch.pk) if case == "other product than its batch" else _key(products[0], batch.pk + 1000)

    assert not CardKey.objects.exists()


def test_a_batch_or_product_with_keys_cannot_be_deleted_behind_the_orm(products):
    batch = CardKeyBatch.objects.create(product=products[0])
    with transaction.atomic():
        _key(products[0], batch.pk)

    for statement in ("DELETE FROM catalog_cardkeybatch", "DELETE FROM catalog_product"):
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)

    assert CardKey.objects.count() == 1
