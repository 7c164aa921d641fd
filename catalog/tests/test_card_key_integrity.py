"""The database keeps every card key tied to a real batch of the same product (one composite
foreign key does both jobs), whatever code path writes the row."""

import pytest
from django.db import IntegrityError, connection, transaction

from catalog.models import CardKey, CardKeyBatch
from catalog.tests.factories import CardKeyBatchFactory, CardKeyFactory, ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)  # deferred constraints are checked at commit


@pytest.fixture
def products():
    return ProductFactory.create_batch(2)


def _key(product, batch):
    return CardKeyFactory(product=product, batch=batch)


def test_a_key_in_a_batch_of_its_own_product_is_stored(products):
    batch = CardKeyBatchFactory(product=products[0])

    with transaction.atomic():
        _key(products[0], batch)

    assert CardKey.objects.filter(batch=batch, product=products[0]).count() == 1


@pytest.mark.parametrize("case", ["other product than its batch", "missing batch"])
def test_the_database_refuses_a_key_outside_a_batch_of_its_product(products, case):
    batch = CardKeyBatchFactory(product=products[0])

    with pytest.raises(IntegrityError), transaction.atomic():
        if case == "other product than its batch":
            _key(products[1], batch)
        else:
            _key(products[0], CardKeyBatch(pk=batch.pk + 1000, product=products[0]))  # never saved

    assert not CardKey.objects.exists()


def test_a_batch_or_product_with_keys_cannot_be_deleted_behind_the_orm(products):
    batch = CardKeyBatchFactory(product=products[0])
    with transaction.atomic():
        _key(products[0], batch)

    for statement in ("DELETE FROM catalog_cardkeybatch", "DELETE FROM catalog_product"):
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)

    assert CardKey.objects.count() == 1
