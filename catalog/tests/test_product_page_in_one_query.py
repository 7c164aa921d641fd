"""The product page reads its product in one statement, and gets what the ORM gave it (issue 15
§2, ADR 0014): the product, its category, its images and custom fields in order, the count."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Product, ProductCustomField, ProductImage
from catalog.selectors import product_on_shelf, products_on_shelf
from orders.tests.factories import add_keys, make_product


def _as_the_orm_reads_it(pk):
    return products_on_shelf().filter(pk=pk).prefetch_related("custom_fields").first()


def _fields(instance, model):
    return {field.attname: getattr(instance, field.attname) for field in model._meta.concrete_fields}


@pytest.mark.django_db
def test_the_product_page_reads_in_one_query_what_the_orm_would_read():
    # given a card-key product with keys, images and custom fields created out of order
    product = make_product()
    add_keys(product, 3)
    ProductImage.objects.create(product=product, image="p/second.png", sort_order=2, width=10, height=20)
    ProductImage.objects.create(product=product, image="p/first.png", sort_order=1)
    ProductCustomField.objects.create(product=product, name="uid", label="游戏 UID", sort_order=2, is_required=True)
    ProductCustomField.objects.create(product=product, name="zone", label="区服", sort_order=1)

    # when the product page reads it
    with CaptureQueriesContext(connection) as queries:
        read = product_on_shelf(pk=product.pk)
        images = [_fields(image, ProductImage) for image in read.images.all()]
        custom = [_fields(field, ProductCustomField) for field in read.custom_fields.all()]
        category = _fields(read.category, type(read.category))

    # then in one query, the same rows as the ORM's, in the same order, and the available count
    assert len(queries) == 1
    orm = _as_the_orm_reads_it(product.pk)
    assert _fields(read, Product) == _fields(orm, Product)
    assert category == _fields(orm.category, type(orm.category))
    assert images == [_fields(image, ProductImage) for image in orm.images.all()]
    assert [image["image"] for image in images] == ["p/first.png", "p/second.png"]
    assert custom == [_fields(field, ProductCustomField) for field in orm.custom_fields.all()]
    assert [field["name"] for field in custom] == ["zone", "uid"]
    assert read.available_count == 3
    assert read.stock_state.available == 3
    assert not hasattr(read, "reusable_key")  # no reusable key: as select_related leaves it


@pytest.mark.django_db
def test_a_product_off_the_shelf_or_unknown_has_no_page():
    shelved = make_product()
    off = make_product()
    Product.objects.filter(pk=off.pk).update(is_on_shelf=False)

    assert product_on_shelf(pk=off.pk) is None
    assert product_on_shelf(pk=shelved.pk + off.pk + 1000) is None
    empty = product_on_shelf(pk=shelved.pk)
    assert list(empty.images.all()) == [] and list(empty.custom_fields.all()) == []
    assert empty.available_count == 0
